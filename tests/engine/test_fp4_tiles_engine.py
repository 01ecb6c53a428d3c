"""The engine on the interpreted triton_tiles backend (CPU): dense FP4 linears take the tile layout
at load and the forward runs the tile kernels (the general kernel with the tile addressing; W4A4
with its activation QDQ). It must equal the plain layout on the plain triton backend: bit for bit
for MXFP4 (both run the same sums here), within the NVFP4 tolerance for NVFP4, whose plain small-M
path (fp4_gemv) sums in another order. (Against the torch reference the tiny bf16 fixture differs
by ~13 % on either triton layout: it is that chaotic in bf16; in fp32 plain triton equals torch.)"""

import pytest
import torch

from qcert import fixtures
from qcert.engine.loader import load
from qcert.kernels.tolerances import assert_close_rel

pytest.importorskip("triton")
IDS = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])


@pytest.mark.parametrize("fmt,op", [("quark-mxfp4", "mxfp4_linear"), ("ct-mxfp4", "mxfp4_linear"),
                                    ("ct-nvfp4", "nvfp4_linear"), ("modelopt-nvfp4", "nvfp4_linear")])
def test_engine_forward_on_triton_tiles_matches_the_plain_layout(fmt, op, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    path = fixtures.cached("llama", fmt)
    plain = load(path, backends={op: "triton"})
    tiled = load(path, backends={op: "triton_tiles"})
    records = tiled.report()["transforms"]
    assert {r["transform"] for r in records} == {"fp4_tiles"} and all(r["in_place"] for r in records), records
    assert plain.report()["transforms"] == []
    got, want = tiled.forward(IDS), plain.forward(IDS)
    if op == "mxfp4_linear":
        assert torch.equal(got, want)
    else:
        assert_close_rel(got, want, "nvfp4", f"llama {fmt} logits, tile vs plain layout")
    assert tiled.report()["backends"][op] == "triton_tiles"  # recorded by the forward
