"""Qwen MoE checkpoints (Qwen2-MoE, Qwen3-MoE, Qwen3.5-MoE) in BF16 and Quark MXFP4: every checkpoint
tensor is claimed by an engine parameter or skipped with a stated reason, the MXFP4 forward is close
to the dequantized float twin, and the shared expert is weighted by sigmoid(shared_expert_gate(x))
(a metamorphic check on edited copies: no reference implementation needed)."""

from __future__ import annotations

import pytest
import torch

from qcert import fixtures
from qcert.conformance import checkpoints as ck
from qcert.conformance.case import case
from qcert.kernels.tolerances import assert_close_rel

CHECKPOINTS = [(f, fmt) for f in ("qwen2-moe", "qwen3-moe", "qwen3.5-moe") for fmt in ("bf16", "quark-mxfp4")]
UNEXPECTED = "no engine parameter claims this tensor"
SMALL = dict(layers=1, experts=4, vocab=64)  # for checkpoints a case copies and edits


@case("qwen-moe/every-tensor-accounted",
      "every tensor of a Qwen MoE checkpoint is claimed, or skipped with a reason (Qwen3.5 vision, MTP)",
      refs=["sglang#22948"], features=["qwen-moe", "quark", "mxfp4", "bf16"])
@pytest.mark.parametrize("family,fmt", CHECKPOINTS, ids=[f"{f}-{m}" for f, m in CHECKPOINTS])
def test_every_tensor_accounted(engine, family, fmt):
    r = engine.plan(fixtures.cached(family, fmt), device="cpu")
    assert not r["missing"], r["missing"][:3]
    assert not [u for u in r["unclaimed"] if u["reason"] == UNEXPECTED], r["unclaimed"][:3]
    skipped = {u["tensor"].split(".")[0] + "." + u["tensor"].split(".")[1] for u in r["unclaimed"]}
    assert skipped == ({"model.visual", "mtp.fc", "mtp.layers", "mtp.norm", "mtp.pre_fc_norm_embedding",
                        "mtp.pre_fc_norm_hidden"} if family == "qwen3.5-moe" else set()), skipped
    assert not r["unmatched_exclude_entries"] or family == "qwen3.5-moe"


@case("qwen-moe/mxfp4-forward-vs-twin",
      "a Qwen MoE Quark MXFP4 forward (W4A16) is within the format's bound of the dequantized float twin",
      refs=["sglang#22948"], features=["qwen-moe", "quark", "mxfp4", "numerics"])
@pytest.mark.parametrize("family", ["qwen2-moe", "qwen3.5-moe"])
def test_mxfp4_forward_vs_twin(engine, family):
    path = fixtures.cached(family, "quark-mxfp4", twin=True, act=None)
    ids = torch.tensor([[4, 8, 15, 16, 23, 42]])
    out = engine.load(path, device="cpu", dtype="float32").forward(ids)
    ref = engine.load(fixtures.twin(path), device="cpu", dtype="float32").forward(ids)
    assert float((out - ref).norm() / ref.norm()) < 1e-4


def _gate_checkpoint(src, dst, shared_down: float, routed_down: float):
    """Copy of a Qwen2-MoE checkpoint where every routed expert and the shared expert are the same
    MLP (expert 0's), routers and shared_expert_gate are zero and every expert is selected: routed
    output = S(x) * routed_down and shared output = sigmoid(0) * S(x) * shared_down."""
    ck.copy(src, dst)
    tc = {}

    def config(cfg):
        cfg["num_experts_per_tok"], cfg["norm_topk_prob"] = cfg["num_experts"], True
        tc.update(cfg)

    ck.edit_config(dst, config)

    def tensors(t):
        for i in range(tc["num_hidden_layers"]):
            m = f"model.layers.{i}.mlp"
            g, u, d = (t[f"{m}.experts.0.{p}_proj.weight"].clone() for p in ("gate", "up", "down"))
            t[f"{m}.gate.weight"].zero_()
            t[f"{m}.shared_expert_gate.weight"].zero_()
            for e in [*(f"experts.{j}" for j in range(tc["num_experts"])), "shared_expert"]:
                scale = shared_down if e == "shared_expert" else routed_down
                t[f"{m}.{e}.gate_proj.weight"], t[f"{m}.{e}.up_proj.weight"] = g.clone(), u.clone()
                t[f"{m}.{e}.down_proj.weight"] = d * scale  # powers of two: exact in BF16

    return ck.rewrite_tensors(dst, tensors)


@case("qwen-moe/shared-expert-gate-is-sigmoid",
      "the Qwen shared expert is weighted by sigmoid(shared_expert_gate(x)), fused or not: with a zero gate "
      "(weight 1/2) a shared expert of down_proj 2D adds what doubling the routed experts' D adds",
      refs=["sglang#22948"], features=["qwen-moe", "shared-expert-fusion", "bf16", "numerics"])
@pytest.mark.parametrize("fusion", ["off", "force"])
def test_shared_expert_gate_is_sigmoid(engine, tmp_path, fusion):
    src = fixtures.cached("qwen2-moe", "bf16", **SMALL)
    # A: routed D + 1/2 * shared 2D;  B: routed 2D + shared 0. Equal iff the gate weight is 1/2.
    a = _gate_checkpoint(src, tmp_path / "a", shared_down=2.0, routed_down=1.0)
    b = _gate_checkpoint(src, tmp_path / "b", shared_down=0.0, routed_down=2.0)
    ids = torch.tensor([[4, 8, 15, 16, 23, 42]])
    out_a = engine.load(a, device="cpu", dtype="float32", shared_expert_fusion=fusion)
    assert out_a.report()["fusion"]["shared_experts"] == (1 if fusion == "force" else 0)
    out_b = engine.load(b, device="cpu", dtype="float32", shared_expert_fusion=fusion)
    assert_close_rel(out_a.forward(ids), out_b.forward(ids), "fp32", what=f"gate 1/2, fusion {fusion}")
