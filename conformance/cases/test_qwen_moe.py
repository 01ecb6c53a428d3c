"""Qwen MoE checkpoints (Qwen2-MoE, Qwen3-MoE, Qwen3.5-MoE) in BF16 and Quark MXFP4: every checkpoint
tensor is claimed by an engine parameter or skipped with a stated reason, and the MXFP4 forward is
close to the dequantized float twin."""

from __future__ import annotations

import pytest
import torch

from qcert import fixtures
from qcert.conformance.case import case

CHECKPOINTS = [(f, fmt) for f in ("qwen2-moe", "qwen3-moe", "qwen3.5-moe") for fmt in ("bf16", "quark-mxfp4")]
UNEXPECTED = "no engine parameter claims this tensor"


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
