"""The interpreted triton fp4 kernels against the torch reference on shapes hypothesis picks: any M,
N and K (whole scale groups), partial tiles everywhere, W4A16 and (linears) W4A4, the tile layout and
the word map where they apply. Each example runs the conformance cases' check (poisoned `out=`, every element
written, per-dtype tolerance), so what the fixed cases cover by example this covers by search."""

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qcert.conformance.cases import test_kernels as tk
from qcert.kernels import registry
from qcert.kernels.layouts import fp4_tiles_fit

pytest.importorskip("qcert.kernels.triton.ops")

DTYPES = st.sampled_from([torch.bfloat16, torch.float16, torch.float32])


@pytest.fixture(autouse=True)
def _interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _runs(op: str, name: str, dtype: torch.dtype) -> bool:
    """Whether backend `name` serves op for CPU tensors of this dtype here."""
    return name in registry.available_backends(op, registry.OpContext(device_type="cpu", dtype=dtype))


@given(kind=st.sampled_from(["mxfp4", "nvfp4"]), m=st.integers(1, 40), n=st.integers(1, 70),
       groups=st.integers(1, 9), dtype=DTYPES, bias=st.booleans(), act=st.booleans(),
       tiles=st.booleans(), seed=st.integers(0, 2**16))
def test_fp4_linear_any_shape(kind, m, n, groups, dtype, bias, act, tiles, seed):
    op, name = f"{kind}_linear", "triton_tiles" if tiles else "triton"
    k = groups * (32 if kind == "mxfp4" else 16)
    if tiles:  # whole 16-row tiles and 128-column steps, bf16 (the layout's GEMV)
        n, k, dtype = -(-n // 16) * 16, -(-k // 128) * 128, torch.bfloat16
        assert fp4_tiles_fit(n, k)
    assume(_runs(op, name, dtype))
    if kind == "mxfp4":
        params = dict(m=m, n=n, k=k, dtype=dtype, act_qdq=act, bias=bias)
    else:
        params = dict(m=m, n=n, k=k, dtype=dtype, per_row_scale_2=bool(seed % 2), input_scale=act, bias=bias)
    tk.check_matches_reference(op, name, params, "cpu", seed)


# W4A16 only: the interpreter's generic reductions make the W4A4 activation QDQ take seconds per
# example (the fixed cases and the linear above cover it); small sizes and 20 examples, as an
# interpreted launch runs its programs one after another (about 0.3 s an example)
@settings(max_examples=20)
@given(kind=st.sampled_from(["mxfp4", "nvfp4"]), t=st.integers(1, 16), h=st.integers(1, 3), i=st.integers(1, 3),
       experts=st.integers(1, 8), top_k=st.integers(1, 4), words=st.booleans(), seed=st.integers(0, 2**16))
def test_fp4_moe_any_shape(kind, t, h, i, experts, top_k, words, seed):
    op, name = f"{kind}_moe", "triton_words" if words else "triton"
    assume(_runs(op, name, torch.bfloat16))
    params = dict(t=t, h=32 * h, i=32 * i, e=experts, k=min(top_k, experts), dtype=torch.bfloat16)
    if kind == "mxfp4":
        params["act_qdq"] = False
    tk.check_matches_reference(op, name, params, "cpu", seed)
