"""FP8 e4m3 per-tensor / per-channel, bit for bit against ml_dtypes."""

import ml_dtypes
import numpy as np
import pytest
import torch

from qcert.kernels.fp8 import dequantize_fp8, qdq_fp8, quantize_fp8_per_channel, quantize_fp8_per_tensor
from qcert.kernels.tolerances import QDQ_BOUNDS, rel_error


def _x(rows=32, k=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, k, generator=g) * torch.exp(2 * torch.randn(rows, 1, generator=g))


def test_per_tensor_scale_and_bits_vs_ml_dtypes():
    x = _x()
    w, s = quantize_fp8_per_tensor(x)
    assert w.dtype == torch.float8_e4m3fn and s.shape == () and float(s) == float(x.abs().max() / 448)
    ref = (x / s).numpy().astype(ml_dtypes.float8_e4m3fn)
    assert np.array_equal(w.view(torch.uint8).numpy(), ref.view(np.uint8))
    assert rel_error(dequantize_fp8(w, s), x) <= QDQ_BOUNDS["fp8"]


def test_per_channel():
    x = _x(seed=1)
    w, s = quantize_fp8_per_channel(x)
    assert s.shape == (32, 1)
    assert torch.equal(s, x.abs().amax(1, keepdim=True) / 448)
    assert torch.equal(w.float().abs().amax(1), torch.full((32,), 448.0))
    assert rel_error(dequantize_fp8(w, s), x) <= QDQ_BOUNDS["fp8"]
    with pytest.raises(ValueError, match="N, K"):
        quantize_fp8_per_channel(torch.randn(2, 3, 4))


def test_scale_shapes_are_equivalent():
    x = _x(seed=2)
    w, s = quantize_fp8_per_channel(x)
    a = dequantize_fp8(w, s)
    assert torch.equal(a, dequantize_fp8(w, s.reshape(-1)))
    one = s[3].reshape(())
    assert torch.equal(dequantize_fp8(w, one), dequantize_fp8(w, one.reshape(1)))


def test_qdq_saturates_and_keeps_nan():
    x = _x(seed=3)
    s = torch.tensor(float(x.abs().max()) / 448 / 2)  # half the needed range
    y = qdq_fp8(x, s)
    big = x.abs() > 448 * s
    assert big.any() and torch.equal(y[big], torch.sign(x[big]) * 448 * s)
    ref = (x / s).clamp(-448, 448).numpy().astype(ml_dtypes.float8_e4m3fn).astype(np.float32) * s.numpy()
    assert np.array_equal(y.numpy(), ref)
    x[0, 0] = float("nan")
    assert torch.isnan(qdq_fp8(x, s)[0, 0])
    assert qdq_fp8(x.bfloat16(), s).dtype == torch.bfloat16


def test_all_zero_tensor_is_zero_not_nan():
    w, s = quantize_fp8_per_tensor(torch.zeros(4, 4))
    assert torch.equal(dequantize_fp8(w, s), torch.zeros(4, 4))
