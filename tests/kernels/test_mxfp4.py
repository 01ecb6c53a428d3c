"""MXFP4 quantize/dequantize: scale rules, edge blocks, error bounds, ml_dtypes cross-check."""

import math
import struct

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qcert.kernels.fp4 import unpack_fp4
from qcert.kernels.mxfp4 import dequantize_mxfp4, qdq_mxfp4, quantize_mxfp4
from qcert.kernels.tolerances import QDQ_BOUNDS, rel_error


def _data(rows, k, seed, spread=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, k, generator=g) * torch.exp2(torch.randint(-spread, spread + 1, (rows, k // 32, 1), generator=g).float()).repeat_interleave(32, 1).squeeze(-1)


def _scale_independent(amax: float, rule: str) -> int:
    """Shared exponent from the float32 bit pattern (aiter's trick for "even": add half of the
    mantissa's second bit, truncate the mantissa), clamped to e8m0, as a byte."""
    if amax == 0:
        return 0
    bits = struct.unpack("<I", struct.pack("<f", amax))[0]
    if rule == "even":
        bits = (bits + 0x200000) & 0x7F800000 if bits >= 0x00800000 else bits
    f = struct.unpack("<f", struct.pack("<I", bits))[0]
    e = math.frexp(f)[1] - 1 - 2
    return min(max(e, -127), 127) + 127


@pytest.mark.parametrize("rule", ["even", "floor"])
def test_scales_match_independent_bit_formula(rule):
    x = _data(16, 256, 0, spread=20)
    _, scales = quantize_mxfp4(x, rule)
    amax = x.reshape(16, 8, 32).abs().amax(-1)
    want = torch.tensor([[_scale_independent(float(a), rule) for a in row] for row in amax], dtype=torch.uint8)
    assert torch.equal(scales, want)


def test_even_and_floor_differ_exactly_where_mantissa_ge_1_75():
    g = torch.Generator().manual_seed(1)
    mant = torch.cat([torch.rand(400, generator=g) + 1, torch.tensor([1.0, 1.5, 1.75, 1.99999988])])
    mant = torch.cat([mant, torch.tensor([1.75]).nextafter(torch.tensor(0.0))])  # just below 1.75
    exp = torch.randint(-60, 60, mant.shape, generator=g).float()
    amax = mant * torch.exp2(exp)
    x = torch.rand(mant.numel(), 32, generator=g) * amax[:, None] * 0.9
    x[:, 5] = -amax  # the block amax, negative to exercise abs
    _, s_even = quantize_mxfp4(x, "even")
    _, s_floor = quantize_mxfp4(x, "floor")
    diff = s_even.squeeze(1).int() - s_floor.squeeze(1).int()
    assert torch.equal(diff, (mant >= 1.75).int())
    assert diff.sum() > 0 and (diff == 0).sum() > 0


def test_k_not_multiple_of_32_raises_naming_k():
    with pytest.raises(ValueError, match="K=48"):
        quantize_mxfp4(torch.randn(2, 48))
    with pytest.raises(ValueError, match="K=48"):
        dequantize_mxfp4(torch.zeros(2, 24, dtype=torch.uint8), torch.zeros(2, 1, dtype=torch.uint8))


def test_dequantize_matches_ml_dtypes():
    x = _data(8, 128, 2)
    packed, scales = quantize_mxfp4(x)
    vals = unpack_fp4(packed).numpy().view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    sc = scales.numpy().view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    ref = (vals.reshape(8, 4, 32) * sc[..., None]).reshape(8, 128)
    assert np.array_equal(dequantize_mxfp4(packed, scales).numpy(), ref)


@pytest.mark.parametrize("rule", ["even", "floor"])
def test_requantize_is_idempotent(rule):
    x = _data(8, 256, 3)
    p, s = quantize_mxfp4(x, rule)
    p2, s2 = quantize_mxfp4(dequantize_mxfp4(p, s), rule)
    assert torch.equal(p, p2) and torch.equal(s, s2)


def test_zero_block_gets_smallest_scale_and_zero_codes():
    x = _data(4, 96, 4)
    x[1, 32:64] = 0
    p, s = quantize_mxfp4(x)
    assert int(s[1, 1]) == 0 and torch.all(unpack_fp4(p)[1, 32:64] == 0)
    assert torch.all(dequantize_mxfp4(p, s)[1, 32:64] == 0)
    assert torch.all(s[0] > 0)


def test_nan_scale_propagates_to_block_only():
    x = _data(4, 96, 5)
    p, s = quantize_mxfp4(x)
    s[2, 1] = 0xFF
    out = dequantize_mxfp4(p, s)
    assert torch.isnan(out[2, 32:64]).all()
    mask = torch.ones_like(out, dtype=torch.bool)
    mask[2, 32:64] = False
    assert torch.isfinite(out[mask]).all()
    # a NaN in the input becomes that block's NaN scale
    x[0, 70] = float("nan")
    p, s = quantize_mxfp4(x)
    assert int(s[0, 2]) == 0xFF and torch.isnan(dequantize_mxfp4(p, s)[0, 64:96]).all()


def test_exponent_clamped_to_e8m0_range():
    x = torch.full((3, 32), 1e-44)  # subnormal amax: exponent below -127
    x[1] = 3e38  # = 1.76 * 2^127: "even" bumps to 2^128 -> exponent 126
    x[2, 3] = -float("inf")
    p, s = quantize_mxfp4(x)
    assert s[:, 0].tolist() == [0, 253, 254]
    assert quantize_mxfp4(x[:2], "floor")[1][:, 0].tolist() == [0, 252]
    assert int(unpack_fp4(p)[2, 3]) == 15  # -6; 6 * 2^127 then overflows float32 to -inf
    assert float(dequantize_mxfp4(p, s)[2, 3]) == -float("inf")


@pytest.mark.parametrize("rule", ["even", "floor"])
def test_qdq_error_bound_gaussian(rule):
    x = _data(64, 512, 6)
    assert rel_error(qdq_mxfp4(x, rule), x) <= QDQ_BOUNDS["mxfp4"]


@given(st.integers(0, 2**31), st.sampled_from(["even", "floor"]), st.integers(-30, 30))
def test_elementwise_error_bound(seed, rule, e):
    # worst case per element: half the 4..6 gap (= 1 step unit) with "even"; "floor" can also
    # saturate amax in [6, 8) down to 6 (<= 2 units).
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(seed)) * 2.0**e
    p, s = quantize_mxfp4(x, rule)
    unit = torch.exp2(s.float() - 127).repeat_interleave(32, dim=1)
    err = (dequantize_mxfp4(p, s) - x).abs()
    assert torch.all(err <= unit * (1 if rule == "even" else 2))


def test_qdq_keeps_dtype_and_batch_dims():
    x = _data(6, 64, 7).bfloat16().reshape(2, 3, 64)
    y = qdq_mxfp4(x)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    assert torch.equal(y.float(), qdq_mxfp4(x.float()))  # qdq values are exact in bf16
