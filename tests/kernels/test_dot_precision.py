"""fp16 and fp32 activations in the kernels' tl.dot (_launch.dot_precision). On NVIDIA fp16 takes a
tf32 dot, where fp16's 11 significant bits and the decoded weights (at most 6) fit, so the products
are exact; fp32 takes two (a tf32 part and the rest: _helpers.act_dot), each product within 2^-20.
A bf16-rounded x would be off by about 2^-9 and a plain tf32 one by about 2^-11; the checks below,
at fp32's tolerance (1e-5), would see either."""

import pytest
import torch

from qcert.kernels.fp8 import dequantize_fp8, quantize_fp8_per_channel
from qcert.kernels.mxfp4 import dequantize_mxfp4, quantize_mxfp4
from qcert.kernels.tolerances import assert_close_rel

fg = pytest.importorskip("qcert.kernels.triton.fp4_gemm")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="the tf32 dot runs compiled on an NVIDIA GPU")


@pytest.mark.parametrize("device,dtype,want", [
    ("meta", torch.bfloat16, "bf16"),  # "meta": a GPU-like device without a GPU
    ("meta", torch.float16, "ieee" if torch.version.hip else "tf32"),
    ("meta", torch.float32, "ieee" if torch.version.hip else "tf32x2"),
    ("cpu", torch.bfloat16, "ieee"),  # the interpreter's bf16 dot is wrong
])
def test_dot_precision_follows_the_activations(device, dtype, want):
    from qcert.kernels.triton._launch import dot_precision

    assert dot_precision(torch.empty(2, 2, dtype=dtype, device=device)) == want


def _x(m, k, seed, dtype=torch.float16):
    """Activations that need more than bf16's 8 significant bits (fp16: all 11; fp32: all 24)."""
    return (torch.randn(m, k, generator=torch.Generator().manual_seed(seed)) * 100).to(dtype).cuda()


def _mxfp4(n, k, seed):
    wp, ws = (t.cuda() for t in quantize_mxfp4(torch.randn(n, k, generator=torch.Generator().manual_seed(seed))))
    return wp, ws, dequantize_mxfp4(wp, ws).double()


@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
@pytest.mark.parametrize("tiled", [False, True], ids=["plain", "tiles"])
def test_fp4_gemm_takes_wide_activations_at_fp32_tolerance(tiled, dtype):
    """MXFP4 at 300 rows (the general kernel, not the GEMV): fp32 output at fp32's tolerance."""
    from qcert.kernels import layouts

    m, n, k = 300, 256, 1024
    wp, ws, w = _mxfp4(n, k, 1)
    x = _x(m, k, 2, dtype)
    w_, s_ = layouts.fp4_tiles(wp, ws.view(torch.uint8)) if tiled else (wp, ws)
    got = fg.fp4_gemm(x, w_, s_, fg.E8M0, out_dtype=torch.float32, tiled=tiled)
    assert_close_rel(got, x.double() @ w.T, "fp32")


@cuda
def test_fp32_sum_over_a_long_k_stays_at_fp32_tolerance():
    """One program summing all of K = 8192 (no split): the tensor cores' fp32 accumulation rounds
    toward zero, so adding both dots into acc inside the mmas lost the low bits at every step, 2.2e-5
    at this K on the H100 (above fp32's 1e-5). act_dot sums each step's two dots from zero and adds
    the step to acc in fp32: 2.6e-7."""
    m, n, k = 256, 256, 8192
    wp, ws, w = _mxfp4(n, k, 11)
    x = _x(m, k, 12, torch.float32)
    got = fg.fp4_gemm(x, wp, ws, fg.E8M0, config=(128, 128, 64, 1, 8, 3))
    assert_close_rel(got, x.double() @ w.T, "fp32")


@cuda
@pytest.mark.parametrize("dot", ["ieee", "tf32x2"])
@pytest.mark.parametrize("m", [2, 9, 16])
def test_fp4_gemv_takes_fp32_activations_at_fp32_tolerance(m, dot, monkeypatch):
    """fp32 at decode sizes: fp4_gemv's M = 2..16 kernel (the tensor-core GEMV takes bf16 and fp16),
    with its two tf32 dots (and 64-row tiles) and with the ieee dot (and 32-row ones) it had before."""
    from qcert.kernels.triton import fp4_gemv as fv

    monkeypatch.setattr(fv, "dot_precision", lambda _x: dot)
    n, k = 384, 2048
    wp, ws, w = _mxfp4(n, k, 5)
    x = _x(m, k, 6, torch.float32)
    assert_close_rel(fv.fp4_gemv(x, wp, ws, fv.E8M0), x.double() @ w.T, "fp32")


@cuda
def test_fp8_gemm_w8a16_takes_fp16_like_the_ieee_dot(monkeypatch):
    """fp8 W8A16 gives x's dtype: the tf32 dot's fp16 output within one fp16 step of the ieee dot's
    (the two fp32 sums differ by their rounding only, far below that step but near zero, hence the
    small absolute term), and near the fp32 reference."""
    from qcert.kernels.triton import fp8_gemm as f8g

    m, n, k = 300, 256, 1024
    wq, wsc = (t.cuda() for t in quantize_fp8_per_channel(torch.randn(n, k, generator=torch.Generator().manual_seed(3))))
    x = _x(m, k, 4)
    got = f8g.fp8_gemm(x, wq, wsc)
    monkeypatch.setattr(f8g, "dot_precision", lambda _x: "ieee")
    ieee = f8g.fp8_gemm(x, wq, wsc)
    step = torch.finfo(torch.float16).eps * ieee.float().abs() + 1e-5 * ieee.float().abs().max()
    assert ((got.float() - ieee.float()).abs() <= step).all()
    assert_close_rel(got, x.float() @ dequantize_fp8(wq, wsc).T, "fp16")


@cuda
def test_fp8_gemm_w8a16_takes_fp32_at_fp32_tolerance():
    from qcert.kernels.triton import fp8_gemm as f8g

    m, n, k = 300, 256, 1024
    wq, wsc = (t.cuda() for t in quantize_fp8_per_channel(torch.randn(n, k, generator=torch.Generator().manual_seed(7))))
    x = _x(m, k, 8, torch.float32)
    assert_close_rel(f8g.fp8_gemm(x, wq, wsc), x.double() @ dequantize_fp8(wq, wsc).double().T, "fp32")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy's inf - inf, masked
@pytest.mark.parametrize("m", [5, 20], ids=["gemv", "gemm"])
def test_tf32x2_split_keeps_every_value_interpreted(m, monkeypatch):
    """The two-tf32-dot branch of _helpers.act_dot (fp32 on NVIDIA) run by the interpreter, whose
    tf32 dot is an fp32 one: the split's algebra, each kernel's operand order and the special values
    (+-inf give the reference's infinities and NaNs, not inf - inf; NaN; a subnormal; -0), not the
    tensor cores' rounding. m = 5: fp4_gemv's M = 2..16 kernel; m = 20: the general kernel."""
    from qcert.kernels.triton import fp4_gemv as fv

    monkeypatch.setattr(fv, "dot_precision", lambda _x: "tf32x2")
    monkeypatch.setattr(fg, "dot_precision", lambda _x: "tf32x2")
    n, k = 24, 64
    wp, ws = quantize_mxfp4(torch.randn(n, k, generator=torch.Generator().manual_seed(9)))
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(10)) * 100
    x[0, 3], x[1, 7], x[2, 9], x[3, 11], x[4, 13] = float("inf"), float("-inf"), float("nan"), 1e-40, -0.0
    got = fv.fp4_gemv(x, wp, ws, fv.E8M0) if m <= fv.MAX_M else fg.fp4_gemm(x, wp, ws, fg.E8M0)
    want = (x.double() @ dequantize_mxfp4(wp, ws).double().T).float()
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf())
    assert torch.equal(got[want.isinf()], want[want.isinf()])
    fin = want.isfinite()
    assert_close_rel(got[fin], want[fin], "fp32")
