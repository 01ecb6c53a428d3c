"""Exclude-name remap for the Qwen MoE family (UPSTREAM.md sections 1 and 3; sglang#22543, sglang#22948).

AMD's Qwen3.5 MXFP4 exports write exclude entries in checkpoint names, under `model.language_model.`;
the engine drops that prefix and fuses q/k/v into `qkv_proj` and gate/up into `gate_up_proj`. An
excluded module must stay unquantized and load the checkpoint's BF16 tensors: full attention, the
shared expert, its scalar `shared_expert_gate` and the gated-delta (linear attention) projections.
What the checkpoint stores is read from its headers, not from the engine.
"""

import pytest
import torch

from qcert import fixtures
from qcert.conformance import checkpoints as ck
from qcert.conformance.case import case

REFS = ["sglang#22543", "sglang#22948"]
FEATURES = ["exclude-remap", "qwen-moe", "quark", "mxfp4"]
# Qwen3.5's default layer_types: layer 0 linear attention, layer 1 full attention.
TINY = dict(layers=2, experts=4, vocab=64, act=None)
SHARDS = {"self_attn": ("q_proj", "k_proj", "v_proj", "o_proj"),
          "linear_attn": ("in_proj_qkv", "in_proj_z", "in_proj_a", "in_proj_b", "out_proj"),
          "shared_expert": ("gate_proj", "up_proj", "down_proj")}


def _exclude(family: str, form: str) -> list[str]:
    mod = fixtures.family_module(family)
    base = mod.default_exclude(family, mod.text_config(mod.config(family, **TINY)))  # routers, gates, lm_head
    p = mod.prefix(family)
    if form == "regex":
        rp = p.replace(".", "[.]")
        return base + [f"re:{rp}layers[.]\\d+[.](self_attn|linear_attn)[.].*",
                       f"re:{rp}layers[.]\\d+[.]mlp[.]shared_expert[.].*"]
    # exact: layer 1's attention, layer 0's linear attention (Qwen3.5) and layer 0's shared expert
    names = [f"{p}layers.1.self_attn.{s}" for s in SHARDS["self_attn"]]
    names += [f"{p}layers.0.mlp.shared_expert.{s}" for s in SHARDS["shared_expert"]]
    if family == "qwen3.5-moe":
        names += [f"{p}layers.0.linear_attn.{s}" for s in SHARDS["linear_attn"]]
    else:
        names += [f"{p}layers.0.self_attn.{s}" for s in SHARDS["self_attn"]]
    return base + [n for n in names if n not in base]


def _fixture(family, form):
    return fixtures.cached(family, "quark-mxfp4", exclude=_exclude(family, form), **TINY)


ROWS = [("qwen3.5-moe", "exact"), ("qwen3.5-moe", "regex"), ("qwen2-moe", "exact")]
# Engine modules each row must report unquantized (beyond routers and lm_head).
MUST_BE_UNQUANTIZED = {
    "qwen3.5-moe": ["model.layers.1.self_attn.qkv_proj", "model.layers.1.self_attn.o_proj",
                    "model.layers.0.linear_attn.in_proj_qkv", "model.layers.0.linear_attn.in_proj_z",
                    "model.layers.0.linear_attn.out_proj", "model.layers.0.mlp.shared_expert.gate_up_proj",
                    "model.layers.0.mlp.shared_expert.down_proj", "model.layers.0.mlp.shared_expert_gate"],
    "qwen2-moe": ["model.layers.0.self_attn.qkv_proj", "model.layers.1.self_attn.qkv_proj",
                  "model.layers.0.mlp.shared_expert.gate_up_proj", "model.layers.0.mlp.shared_expert_gate"],
}


@case("exclude-remap/qwen-excluded-modules-unquantized",
      "Qwen MoE (Qwen3.5 entries under model.language_model.): a module is unquantized iff the checkpoint stores "
      "it unquantized: fused qkv/gate_up, shared expert and its gate, linear-attention projections",
      refs=REFS, features=FEATURES)
@pytest.mark.parametrize("family,form", ROWS, ids=[f"{f}-{m}" for f, m in ROWS])
def test_qwen_excluded_modules_unquantized(engine, family, form):
    path = _fixture(family, form)
    report = engine.plan(path, device="cpu")
    mods = {m["name"]: m for m in report["modules"]}
    problems, checked = ck.scheme_mismatches(report, ck.stored(path))
    assert not problems, "; ".join(problems[:5])
    assert checked >= 10
    for name in MUST_BE_UNQUANTIZED[family]:
        assert mods[name]["scheme"] == "unquantized" and mods[name]["excluded_by"], mods[name]
    # The excluded shared expert is not fused into the (MXFP4) routed experts.
    assert report["fusion"]["shared_experts"] == 0, report["fusion"]
    assert not [e for e in report["unmatched_exclude_entries"] if not e.startswith("mtp.")], \
        report["unmatched_exclude_entries"]


@case("exclude-remap/qwen-excluded-loads-checkpoint-bf16",
      "Qwen MoE: an excluded fused module (qkv_proj, gate_up_proj) or linear-attention projection holds the "
      "checkpoint's BF16 shard tensors, concatenated (biases too)",
      refs=REFS, features=FEATURES + ["bf16"])
@pytest.mark.parametrize("family", ["qwen3.5-moe", "qwen2-moe"])
def test_qwen_excluded_loads_checkpoint_bf16(engine, family):
    path = _fixture(family, "exact")
    model = engine.load(path, device="cpu")
    params = model.parameters()
    mods = {m["name"]: m for m in model.report()["modules"]}
    for name in MUST_BE_UNQUANTIZED[family]:
        m = mods[name]
        for suffix in (".weight", ".bias"):
            shards = [s for s in m["sources"] if s.endswith(suffix)]
            if not shards:
                continue
            expected = torch.cat([ck.tensor(path, s) for s in shards])
            got = params[f"{name}{suffix}"]
            assert got.dtype == torch.bfloat16 and torch.equal(got, expected), f"{name}{suffix}"
    out = model.forward(torch.tensor([[1, 2, 3, 4]]))
    assert torch.isfinite(out).all()


@case("exclude-remap/qwen-partial-qkv-exclusion-error",
      "Qwen3.5: excluding q_proj (by its model.language_model. name) but not k_proj/v_proj is an error naming "
      "the fused qkv_proj and the entry as written",
      refs=REFS, features=FEATURES + ["bad-input"], raises=(ValueError, "same scheme"))
def test_qwen_partial_qkv_exclusion(engine, expected_error):
    family = "qwen3.5-moe"
    mod = fixtures.family_module(family)
    entries = mod.default_exclude(family, mod.text_config(mod.config(family, **TINY)))
    path = fixtures.cached(family, "quark-mxfp4", exclude=[*entries, "model.language_model.layers.1.self_attn.q_proj"],
                           **TINY)
    with expected_error as err:
        engine.plan(path, device="cpu")
    assert "model.layers.1.self_attn.qkv_proj" in str(err.value)
    assert "model.language_model.layers.1.self_attn.q_proj" in str(err.value)
