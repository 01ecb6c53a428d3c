"""e2m1/e8m0 helpers, bit for bit against ml_dtypes and torch's float8_e8m0fnu."""

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qcert.kernels.fp4 import E2M1_VALUES, e2m1_to_float, e8m0_to_float, float_to_e2m1, pack_fp4, unpack_fp4


def _ml_codes(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(x.numpy().astype(ml_dtypes.float4_e2m1fn).view(np.uint8).copy())


def _random_floats(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # magnitudes across the e2m1 range and beyond, plus every tie point and its neighbours
    x = torch.randn(n, generator=g) * torch.exp2(torch.randint(-4, 5, (n,), generator=g).float())
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0, 7.0, 1e30, float("inf"), 0.0])
    ties = torch.cat([ties, ties.nextafter(torch.tensor(0.0)), ties.nextafter(torch.tensor(1e38))])
    return torch.cat([x, ties, -ties])


def test_value_table_matches_ml_dtypes():
    ref = np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    assert np.array_equal(E2M1_VALUES.numpy().view(np.uint32), ref.view(np.uint32))  # incl. -0


@pytest.mark.parametrize("seed", [0, 1])
def test_float_to_e2m1_bitexact_vs_ml_dtypes(seed):
    x = _random_floats(20000, seed)
    assert torch.equal(float_to_e2m1(x), _ml_codes(x))


def test_float_to_e2m1_random_bit_patterns():
    # every float32 class: subnormals, huge, signed zeros (NaN excluded: e2m1 has none, see below)
    bits = torch.randint(-(2**31), 2**31 - 1, (50000,), generator=torch.Generator().manual_seed(3), dtype=torch.int64)
    x = bits.to(torch.int32).view(torch.float32)
    x = x[~torch.isnan(x)]
    assert torch.equal(float_to_e2m1(x), _ml_codes(x))


def test_nan_and_signed_zero():
    codes = float_to_e2m1(torch.tensor([float("nan"), -float("nan"), -0.0, 0.0, -0.1]))
    assert codes.tolist() == [0, 8, 8, 0, 8]  # NaN -> zero with its sign bit; -0 keeps the sign


def test_bf16_input_same_as_fp32():
    x = _random_floats(4000, 5).bfloat16()
    assert torch.equal(float_to_e2m1(x), _ml_codes(x.float()))


@given(st.floats(allow_nan=False, width=32))
def test_nearest_ties_to_even(v):
    code = int(float_to_e2m1(torch.tensor([v]))[0])
    a = min(abs(v), 6.0)
    mags = E2M1_VALUES[:8].tolist()
    dist = [abs(a - m) for m in mags]
    best = min(dist)
    cands = [i for i, d in enumerate(dist) if d == best]
    want = cands[0] if len(cands) == 1 else next(i for i in cands if i % 2 == 0)
    assert code & 7 == want
    assert (code >> 3) == int(np.signbit(np.float32(v)))


@given(st.integers(1, 6), st.integers(1, 16), st.integers(0, 2**31))
def test_pack_unpack_roundtrip_and_nibble_order(rows, half_k, seed):
    codes = torch.randint(0, 16, (rows, 2 * half_k), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    packed = pack_fp4(codes)
    assert packed.shape == (rows, half_k) and packed.dtype == torch.uint8
    assert torch.equal(unpack_fp4(packed), codes)
    j = half_k - 1
    assert int(packed[0, j]) == int(codes[0, 2 * j]) | (int(codes[0, 2 * j + 1]) << 4)
    # same bytes are a valid torch.float4_e2m1fn_x2 tensor of the packed shape
    assert packed.view(torch.float4_e2m1fn_x2).shape == packed.shape


def test_pack_odd_k_raises():
    with pytest.raises(ValueError, match="K=3"):
        pack_fp4(torch.zeros(2, 3, dtype=torch.uint8))


def test_e2m1_to_float_vs_ml_dtypes_random():
    codes = torch.randint(0, 16, (3000,), generator=torch.Generator().manual_seed(7), dtype=torch.uint8)
    ref = codes.numpy().view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    assert np.array_equal(e2m1_to_float(codes).numpy().view(np.uint32), ref.view(np.uint32))


def test_e8m0_all_bytes_vs_torch_and_ml_dtypes():
    u = torch.arange(256, dtype=torch.uint8)
    ours = e8m0_to_float(u)
    via_torch = u.view(torch.float8_e8m0fnu).float()
    via_ml = u.numpy().view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    finite = u != 255
    assert torch.equal(ours[finite].view(torch.int32), via_torch[finite].view(torch.int32))
    assert np.array_equal(ours.numpy()[:255].view(np.uint32), via_ml[:255].view(np.uint32))
    assert torch.isnan(ours[255]) and torch.isnan(via_torch[255]) and np.isnan(via_ml[255])
    # also through the float8_e8m0fnu dtype itself, on a random shaped tensor
    r = torch.randint(0, 255, (17, 9), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    assert torch.equal(e8m0_to_float(r.view(torch.float8_e8m0fnu)), r.view(torch.float8_e8m0fnu).float())
