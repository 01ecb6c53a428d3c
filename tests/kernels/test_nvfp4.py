"""NVFP4 (ModelOpt and compressed-tensors conventions)."""

import ml_dtypes
import numpy as np
import pytest
import torch

from qcert.kernels.fp4 import unpack_fp4
from qcert.kernels.nvfp4 import (
    ct_global_scale,
    ct_global_scale_from_modelopt,
    dequantize_nvfp4,
    dequantize_nvfp4_ct,
    modelopt_scale_2_from_ct,
    qdq_nvfp4,
    quantize_nvfp4,
    quantize_nvfp4_ct,
)
from qcert.kernels.tolerances import QDQ_BOUNDS, rel_error


def _w(rows=64, k=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, k, generator=g) * torch.exp(torch.randn(rows, 1, generator=g))).bfloat16()


def test_modelopt_scales_and_independent_dequant():
    w = _w()
    packed, bs, s2 = quantize_nvfp4(w)
    amax = w.float().abs().max()
    assert s2.dtype == torch.float32 and s2.shape == () and float(s2) == float(amax / 2688)
    block_amax = w.float().reshape(64, 16, 16).abs().amax(-1)
    want = (block_amax / 6 / s2).numpy().astype(ml_dtypes.float8_e4m3fn)  # ml_dtypes' own e4m3 cast
    assert np.array_equal(bs.view(torch.uint8).numpy(), want.view(np.uint8))
    vals = unpack_fp4(packed).numpy().view(ml_dtypes.float4_e2m1fn).astype(np.float32).reshape(64, 16, 16)
    ref = (vals * want.astype(np.float32)[..., None]).reshape(64, 256) * np.float32(s2)
    assert np.array_equal(dequantize_nvfp4(packed, bs, s2).numpy(), ref)
    assert rel_error(dequantize_nvfp4(packed, bs, s2), w.float()) <= QDQ_BOUNDS["nvfp4"]


def test_fused_group_shares_global_amax():
    gate, up = _w(32, 64, 1), _w(32, 64, 2) * 3
    g = max(float(gate.float().abs().max()), float(up.float().abs().max()))
    _, _, s_gate = quantize_nvfp4(gate, global_amax=g)
    _, _, s_up = quantize_nvfp4(up, global_amax=g)
    assert float(s_gate) == float(s_up) == pytest.approx(g / 2688, rel=1e-7)
    with pytest.raises(ValueError, match="below"):
        quantize_nvfp4(up, global_amax=g / 10)


def test_zero_block_and_k_check():
    w = _w(4, 64, 3)
    w[1, 16:32] = 0
    p, bs, s2 = quantize_nvfp4(w)
    out = dequantize_nvfp4(p, bs, s2)
    assert torch.all(out[1, 16:32] == 0) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="K=40"):
        quantize_nvfp4(torch.randn(2, 40))


def test_per_row_scale_2_equals_rowwise_dequant():
    a, b = _w(16, 64, 4), _w(16, 64, 5) * 10  # e.g. q and k loaded unfused, concatenated
    pa, ba, sa = quantize_nvfp4(a)
    pb, bb, sb = quantize_nvfp4(b)
    rows = torch.cat([sa.expand(16), sb.expand(16)])
    out = dequantize_nvfp4(torch.cat([pa, pb]), torch.cat([ba, bb]), rows)
    assert torch.equal(out, torch.cat([dequantize_nvfp4(pa, ba, sa), dequantize_nvfp4(pb, bb, sb)]))


def test_ct_same_quantization_within_bf16_rounding_of_global_scale():
    w = _w(seed=6)
    packed, bs, s2 = quantize_nvfp4(w)
    gs = ct_global_scale(w.float().abs().max())
    assert gs.shape == (1,) and gs.dtype == torch.float32
    assert torch.equal(gs, ct_global_scale_from_modelopt(s2)) or abs(float(gs) * float(s2) - 1) < 2**-8
    mo, ct = dequantize_nvfp4(packed, bs, s2), dequantize_nvfp4_ct(packed, bs, gs)
    nz = mo != 0
    rel = ((ct - mo).abs()[nz] / mo.abs()[nz]).max()
    assert rel <= 2**-9 + 2**-22  # half a bf16 ulp, plus fp32 rounding
    assert torch.equal(mo == 0, ct == 0)


def test_ct_exact_when_global_scale_is_a_power_of_two():
    w = _w(seed=7).float()
    w = w / w.abs().max() * (2688 / 1024)  # amax such that gs = 1024 exactly
    packed, bs, s2 = quantize_nvfp4(w)
    gs = ct_global_scale(w.abs().max())
    assert float(gs) == 1024.0 and float(modelopt_scale_2_from_ct(gs)) == float(s2)
    assert torch.equal(dequantize_nvfp4(packed, bs, s2), dequantize_nvfp4_ct(packed, bs, gs))
    # and then each producer's own quantizer gives identical checkpoints
    pc, bc, gc = quantize_nvfp4_ct(w)
    assert torch.equal(pc, packed) and torch.equal(bc.view(torch.uint8), bs.view(torch.uint8))


def test_independent_producers_agree_within_quantization_error():
    w = _w(seed=8)
    p, b, s2 = quantize_nvfp4(w)
    pc, bc, gs = quantize_nvfp4_ct(w)
    mo, ct = dequantize_nvfp4(p, b, s2), dequantize_nvfp4_ct(pc, bc, gs)
    same_scale = (b.view(torch.uint8) == bc.view(torch.uint8)).float().mean()
    assert same_scale >= 0.9  # a few blocks' scales cross an e4m3 rounding boundary
    assert rel_error(ct, w.float()) <= QDQ_BOUNDS["nvfp4"] and rel_error(ct, mo) <= 0.05


def test_activation_qdq_saturates_above_calibrated_amax():
    x = _w(8, 64, 9).float()
    s2 = x.abs().max() / 2688 / 4  # calibrated on a quarter of the real range
    y = qdq_nvfp4(x, s2)
    assert y.abs().max() <= 6 * 448 * float(s2) * (1 + 1e-6)
    assert torch.isfinite(y).all() and y.dtype == x.dtype
    # within range, qdq with a static scale equals weight-style quantization at that scale
    x_in = x / 8
    p, bs, s2_w = quantize_nvfp4(x_in, global_amax=float(s2) * 2688)
    assert torch.equal(qdq_nvfp4(x_in, s2_w), dequantize_nvfp4(p, bs, s2_w))
