"""Shared-expert fusion decisions (UPSTREAM.md section 3; sglang#25390, sglang#22948).

Fusing the shared expert into the routed-expert tensor as slot n_routed is only sound where it was
validated and where the shared expert is stored like the routed experts. Decision tables flip one
precondition at a time from a checkpoint that fuses; the properties check "on iff every precondition
holds"; the forward cases check fused == unfused. All decisions are read from the static plan.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from qcert import fixtures
from qcert.conformance.case import case
from qcert.kernels.tolerances import assert_close_rel

# Tiny DeepSeek text model: 256/384 routed experts are cheap at hidden 32 (plan-only checks).
DS = dict(layers=1, dense_layers=0, hidden=32, moe_inter=32, inter=32, heads=1, q_lora=32, kv_lora=32, nope=16,
          rope=16, v_head=32, vocab=64)
DS_SHARED_BF16 = [f"model.layers.0.mlp.shared_experts.{p}" for p in ("gate_proj", "up_proj", "down_proj")]
Q35_SHARED_BF16 = [f"model.language_model.layers.{i}.mlp.shared_expert.{p}" for i in range(2)
                   for p in ("gate_proj", "up_proj", "down_proj")]
Q35_MTP_SHARED_BF16 = [f"mtp.layers.0.mlp.shared_expert.{p}" for p in ("gate_proj", "up_proj", "down_proj")]
# Excludes the shared expert without the substring `shared_expert`: only a scheme check catches it.
Q35_SHARED_REGEX = "re:model.language_model.layers.*.mlp.shared_(?!expert_gate).*"
ALL_EXCLUDED = {"quant_method": "quark", "version": "0.13", "exclude": ["re:.*"],
                "global_quant_config": {"weight": {"dtype": "fp4", "qscheme": "per_group", "group_size": 32,
                                                   "scale_format": "e8m0", "ch_axis": -1}, "input_tensors": None}}


def ds(experts=256, shared=1, fmt="bf16", family="deepseek-v3", exclude=None):
    ex = None if exclude is None else [*fixtures.family_module(family).default_exclude(
        family, fixtures.family_module(family).text_config(fixtures.family_module(family).config(family, experts=experts, **DS))), *exclude]
    return fixtures.cached(family, fmt, experts=experts, shared_experts=shared, exclude=ex, **DS)


def q35(fmt="bf16", extra_exclude=(), **params):
    mod = fixtures.family_module("qwen3.5-moe")
    ex = None
    if extra_exclude:
        ex = [*mod.default_exclude("qwen3.5-moe", mod.text_config(mod.config("qwen3.5-moe", **params))), *extra_exclude]
    return fixtures.cached("qwen3.5-moe", fmt, exclude=ex, **params)


_VARIANTS = Path(tempfile.mkdtemp(prefix="qcert-fusion-"))  # this process's edited copies
atexit.register(shutil.rmtree, _VARIANTS, True)


def variant(src: Path, edit) -> Path:
    """A copy of a cached checkpoint with config.json edited (tensors hard-linked: headers unchanged)."""
    dst = Path(tempfile.mkdtemp(dir=_VARIANTS))
    for f in src.iterdir():
        if f.name == "config.json":
            cfg = json.loads(f.read_text())
            edit(cfg)
            (dst / f.name).write_text(json.dumps(cfg))
        elif f.is_file():
            try:
                os.link(f, dst / f.name)
            except OSError:
                shutil.copy(f, dst / f.name)
    return dst


def set_archs(archs):
    return lambda cfg: cfg.__setitem__("architectures", archs)


def fusion_of(engine, path, mode="auto"):
    return engine.plan(path, shared_expert_fusion=mode, device="cpu")["fusion"]


def assert_fusion(f, on: bool, fragment: str):
    assert (f["shared_experts"] == 1) == on, f
    assert fragment in f["reason"], f


# --- DeepSeek family -------------------------------------------------------------------------------
DS_ROWS = {
    # name: (checkpoint builder, engine mode, fused?, reason fragment)
    "base-256": (lambda: ds(256), "auto", True, "on:"),
    "disabled": (lambda: ds(256), "off", False, "disabled"),
    "forced-skips-checks": (lambda: variant(ds(256), set_archs(["DeepseekV2ForCausalLM"])), "force", True, "forced"),
    "foreign-architecture": (lambda: variant(ds(256), set_archs(["DeepseekV2ForCausalLM"])), "auto", False, "architecture"),
    "empty-architectures": (lambda: variant(ds(256), set_archs([])), "auto", False, "empty"),
    "not-in-allow-list": (lambda: ds(64), "auto", False, "allow-list"),
    "two-shared-experts": (lambda: ds(256, shared=2), "auto", False, "n_shared_experts=2"),
    "384-quark": (lambda: ds(384, fmt="quark-mxfp4"), "auto", True, "on:"),
    "384-not-quark": (lambda: ds(384), "auto", False, "only with quark"),
    "glm5-matching-schemes": (lambda: ds(256, fmt="quark-mxfp4", family="glm-5"), "auto", True, "on:"),
    "glm5-bf16-shared-expert": (lambda: ds(256, fmt="quark-mxfp4", family="glm-5", exclude=DS_SHARED_BF16), "auto",
                                False, "scheme mismatch"),
}


@case("fusion/deepseek-decision-table",
      "DeepSeek family fuses only when enabled, architecture expected, experts allow-listed (384 only with quark), "
      "one shared expert and matching schemes; each flip reports its reason",
      refs=["sglang#25390"], features=["shared-expert-fusion", "deepseek-v3", "glm-5", "quark", "mxfp4", "bf16"])
@pytest.mark.parametrize("row", list(DS_ROWS))
def test_deepseek_decision_table(engine, row):
    build, mode, on, fragment = DS_ROWS[row]
    assert_fusion(fusion_of(engine, build(), mode), on, fragment)


@case("fusion/kimi-k2.5-384-quark-only",
      "a Kimi-K2.5-like checkpoint (384 routed experts) fuses with Quark MXFP4 and not with another quant method "
      "(compressed-tensors NVFP4 or MXFP4, whose shared expert matches the routed experts) nor unquantized",
      refs=["sglang#25390"],
      features=["shared-expert-fusion", "kimi-k2.5", "quark", "compressed-tensors", "mxfp4", "nvfp4", "bf16"])
# ct-mxfp4 stores the same MXFP4 format as the quark row: only the quant method differs.
@pytest.mark.parametrize("fmt,on", [("quark-mxfp4", True), ("ct-nvfp4", False), ("ct-mxfp4", False), ("bf16", False)])
def test_kimi_384(engine, fmt, on):
    r = engine.plan(ds(384, fmt=fmt, family="kimi-k2.5"), shared_expert_fusion="auto", device="cpu")
    assert_fusion(r["fusion"], on, "Kimi-K2.5" if on else "validated only with quark")
    if fmt.startswith("ct-"):
        # Off because of the method alone: routed and shared experts share the quantized scheme.
        schemes = {m["scheme"] for m in r["modules"] if "experts" in m["name"]}
        assert r["quant_method"] == "compressed-tensors" and len(schemes) == 1 and schemes != {"unquantized"}, schemes


# No @settings on the properties: example counts come from the hypothesis profile (conformance/plugin.py:
# ci 60, nightly 2000; hypothesis stops early once a finite space is exhausted). Each example plans a
# config-edited copy of a cached fixture; fixture builds happen once per drawn size, then are cached.
@st.composite
def ds_configs(draw):
    n = draw(st.sampled_from([64, 256, 384]))
    shared = draw(st.sampled_from([1, 2]))
    quant = draw(st.sampled_from(["none", "quark", "quark-bf16-shared"] if (n, shared) == (256, 1) else ["none", "quark"]))
    return dict(mode=draw(st.sampled_from(["auto", "off", "force"])), n=n, shared=shared, quant=quant,
                archs=draw(st.sampled_from(["expected", "foreign", "empty"])))


@case("fusion/deepseek-property", "DeepSeek family: fusion is on iff every precondition holds (or forced)",
      refs=["sglang#25390"], features=["shared-expert-fusion", "deepseek-v3", "glm-5", "hypothesis"])
@given(c=ds_configs())
# The boundary of each precondition, always run (the random draws may miss them).
@example(c=dict(mode="auto", n=384, shared=1, quant="quark", archs="expected"))
@example(c=dict(mode="auto", n=384, shared=1, quant="none", archs="expected"))
@example(c=dict(mode="auto", n=256, shared=1, quant="quark-bf16-shared", archs="expected"))
@example(c=dict(mode="auto", n=256, shared=1, quant="none", archs="empty"))
@example(c=dict(mode="force", n=256, shared=1, quant="quark-bf16-shared", archs="expected"))  # found by nightly
def test_deepseek_property(engine, c):
    if c["quant"] == "quark-bf16-shared":
        src = ds(256, fmt="quark-mxfp4", family="glm-5", exclude=DS_SHARED_BF16)
        expected_arch = "GlmMoeDsaForCausalLM"
    else:
        src, expected_arch = ds(c["n"], shared=c["shared"]), "DeepseekV3ForCausalLM"
    archs = {"expected": [expected_arch], "foreign": ["DeepseekV2ForCausalLM"], "empty": []}[c["archs"]]

    def edit(cfg):
        cfg["architectures"] = archs
        if c["quant"] == "quark":
            cfg["quantization_config"] = ALL_EXCLUDED

    path = variant(src, edit)
    if c["mode"] == "force" and (c["shared"] != 1 or c["quant"] == "quark-bf16-shared"):
        # Forcing skips every check; two shared experts cannot fill one slot, and a BF16 shared expert
        # cannot be stored in MXFP4 expert tensors: one clear plan error naming the tensors.
        with pytest.raises(ValueError, match="shared_experts"):
            fusion_of(engine, path, c["mode"])
        return
    f = fusion_of(engine, path, c["mode"])
    method = "none" if c["quant"] == "none" else "quark"
    preconditions = (c["archs"] == "expected" and c["n"] in (256, 384) and c["shared"] == 1
                     and (c["n"] != 384 or method == "quark") and c["quant"] != "quark-bf16-shared")
    expected = c["mode"] == "force" or (c["mode"] == "auto" and preconditions)
    assert (f["shared_experts"] == 1) == expected, (c, f)
    assert f["reason"]


# --- Qwen MoE family -------------------------------------------------------------------------------
Q_ROWS = {
    "qwen3.5-mxfp4-base": (lambda: q35("quark-mxfp4"), "auto", True, "on:"),
    "disabled": (lambda: q35("quark-mxfp4"), "off", False, "disabled"),
    "shared-expert-gate-entries-exempt": (lambda: q35("quark-mxfp4", ["model.language_model.layers.0.mlp.shared_expert_gate"]),
                                          "auto", True, "on:"),
    "mtp-entries-exempt": (lambda: q35("quark-mxfp4", Q35_MTP_SHARED_BF16), "auto", True, "on:"),
    "shared-expert-excluded": (lambda: q35("quark-mxfp4", Q35_SHARED_BF16), "auto", False, "excluded"),
    "plural-regex-entry": (lambda: variant(q35("bf16"), lambda c: c.__setitem__(
        "quantization_config", {**ALL_EXCLUDED, "exclude": ["re:.*", "re:.*shared_experts.*"]})), "auto", False, "excluded"),
    "scheme-mismatch": (lambda: q35("quark-mxfp4", [Q35_SHARED_REGEX]), "auto", False, "scheme mismatch"),
    "shared-size-differs": (lambda: q35("bf16", shared_inter=32), "auto", False, "differs"),
    "forced-size-differs": (lambda: q35("bf16", shared_inter=32), "force", False, "differs"),
    "no-shared-expert": (lambda: fixtures.cached("qwen3-moe", "bf16"), "auto", False, "not positive"),
    "qwen2-bf16": (lambda: fixtures.cached("qwen2-moe", "bf16"), "auto", True, "on:"),
}


@case("fusion/qwen-decision-table",
      "Qwen MoE fuses unless disabled, the shared expert's size differs, it is excluded from quantization "
      "(shared_expert_gate and mtp. entries exempt) or its scheme differs; each flip reports its reason",
      refs=["sglang#22948"], features=["shared-expert-fusion", "qwen-moe", "quark", "mxfp4", "bf16"])
@pytest.mark.parametrize("row", list(Q_ROWS))
def test_qwen_decision_table(engine, row):
    build, mode, on, fragment = Q_ROWS[row]
    assert_fusion(fusion_of(engine, build(), mode), on, fragment)


EXTRA_ENTRIES = ["model.language_model.layers.0.mlp.shared_expert.gate_proj",
                 "model.language_model.layers.1.mlp.shared_expert_gate", "mtp.layers.0.mlp.shared_expert.up_proj",
                 "re:.*mlp.shared_experts.*", "model.language_model.layers.1.mlp.gate", "re:mtp.*shared_expert.*"]


def _qwen_excludes(entry: str) -> bool:
    return "shared_expert" in entry and "shared_expert_gate" not in entry and not entry.startswith("mtp.")


@case("fusion/qwen-property", "Qwen MoE: fusion is on iff every precondition holds (force skips the exclusion check only)",
      refs=["sglang#22948"], features=["shared-expert-fusion", "qwen-moe", "hypothesis"])
@given(mode=st.sampled_from(["auto", "off", "force"]), shared_inter=st.sampled_from([64, 32, 0]),
       extras=st.lists(st.sampled_from(EXTRA_ENTRIES), max_size=3, unique=True), quark=st.booleans())
@example(mode="auto", shared_inter=64, extras=[EXTRA_ENTRIES[1]], quark=True)
@example(mode="auto", shared_inter=64, extras=[EXTRA_ENTRIES[2]], quark=True)
@example(mode="auto", shared_inter=64, extras=[EXTRA_ENTRIES[0]], quark=True)
def test_qwen_property(engine, mode, shared_inter, extras, quark):
    src = q35("bf16", shared_inter=shared_inter)

    def edit(cfg):
        if quark or extras:
            cfg["quantization_config"] = {**ALL_EXCLUDED, "exclude": ["re:.*", *extras]}

    f = fusion_of(engine, variant(src, edit), mode)
    sizes_ok = shared_inter == 64
    expected = mode != "off" and sizes_ok and (mode == "force" or not any(map(_qwen_excludes, extras)))
    assert (f["shared_experts"] == 1) == expected, (mode, shared_inter, extras, f)


# --- Loads and forwards ----------------------------------------------------------------------------
@case("fusion/bf16-shared-expert-loads-unfused",
      "MXFP4 checkpoints whose shared expert is BF16 (GLM-5-like, Qwen3.5-like) load without error, unfused",
      refs=["sglang#22948", "sglang#22543"], features=["shared-expert-fusion", "glm-5", "qwen-moe", "quark", "mxfp4"])
@pytest.mark.parametrize("which", ["glm-5", "qwen3.5-moe"])
def test_bf16_shared_expert_loads(engine, which):
    if which == "glm-5":
        path, fragment = ds(256, fmt="quark-mxfp4", family="glm-5", exclude=DS_SHARED_BF16), "scheme mismatch"
    else:
        path, fragment = q35("quark-mxfp4", Q35_SHARED_BF16), "excluded"
    m = engine.load(path, device="cpu")
    r = m.report()
    assert_fusion(r["fusion"], False, fragment)
    shared = [x for x in r["modules"] if "shared_expert" in x["name"] and "gate_up" in x["name"]]
    assert shared and all(x["scheme"] == "unquantized" for x in shared), shared
    out = m.forward(torch.tensor([[1, 2, 3, 4]]))
    assert torch.isfinite(out).all()


FWD = {
    "deepseek-v3-bf16": ("deepseek-v3", "bf16"), "deepseek-v3-mxfp4": ("deepseek-v3", "quark-mxfp4"),
    "qwen2-moe-bf16": ("qwen2-moe", "bf16"), "qwen2-moe-mxfp4": ("qwen2-moe", "quark-mxfp4"),
    "qwen3.5-moe-bf16": ("qwen3.5-moe", "bf16"), "qwen3.5-moe-mxfp4": ("qwen3.5-moe", "quark-mxfp4"),
}


@case("fusion/fused-equals-unfused",
      "with the shared expert fused as routed slot n_routed the forward equals the unfused forward (fp32 tolerance)",
      refs=["sglang#25390", "sglang#22948"],
      features=["shared-expert-fusion", "deepseek-v3", "qwen-moe", "quark", "mxfp4", "bf16", "numerics"])
@pytest.mark.parametrize("which", list(FWD))
def test_fused_equals_unfused(engine, which):
    family, fmt = FWD[which]
    path = fixtures.cached(family, fmt)
    ids = torch.tensor([[5, 9, 33, 2, 17, 64, 100, 3]])
    off = engine.load(path, device="cpu", dtype="float32", shared_expert_fusion="off")
    on = engine.load(path, device="cpu", dtype="float32", shared_expert_fusion="force")
    assert off.report()["fusion"]["shared_experts"] == 0 and on.report()["fusion"]["shared_experts"] == 1
    assert_close_rel(on.forward(ids), off.forward(ids), "fp32", what=which)
