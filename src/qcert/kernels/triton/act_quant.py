"""Activation quantization kernels, run before a W4A4 / W8A8 GEMM (as serving engines do).

- mxfp4_qdq: dynamic MXFP4 quantize-dequantize along K, Quark's "even" scale rule, NaN blocks stay
  NaN (scale 0xFF). Output bf16: e2m1 * 2^k is exact there (bf16 has fp32's exponent range).
- nvfp4_qdq: NVFP4 with a static global scale s2 (ModelOpt input_scale): e4m3 block scale
  sat(amax/6/s2), codes of x/(scale*s2), NaN blocks stay NaN. Output code*scale, without s2, in bf16 (exact: at most 6
  significant bits); the GEMM multiplies by s2 in its epilogue.
- fp8_quant: static per-tensor e4m3 quantization x/s, saturating at +-448. Output float8_e4m3fn.

The FP4 QDQs give bf16 so that a decode-sized GEMM on NVIDIA can take the tensor-core GEMV.

Divisions use div_rn (IEEE round-to-nearest) so the codes match the torch reference exactly.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _helpers as h
from ._launch import kernel


def _mxfp4_qdq(x_ptr, y_ptr, numel, NB: tl.constexpr,
               MAX: tl.constexpr, E2M1_CODE: tl.constexpr, FP4_TO_F32: tl.constexpr):
    # x is contiguous and K % 32 == 0: view it as [numel // 32, 32] blocks
    blk = tl.program_id(0).to(tl.int64) * NB + tl.arange(0, NB)
    offs = blk[:, None] * 32 + tl.arange(0, 32)[None, :]
    ok = offs < numel
    x = tl.load(x_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    a = tl.abs(x)
    has_nan = MAX(tl.where(x != x, 1, 0))
    amax = MAX(tl.where(x != x, 0.0, a))
    # shared exponent from the bits: floor(log2 amax) + (mantissa >= 1.75) - 2, clamped to e8m0
    ab = amax.to(tl.int32, bitcast=True)
    ef = (ab >> 23) & 255
    e = tl.where(ef == 0, -127, ef - 127 + tl.where((ab & 0x7FFFFF) >= 0x600000, 1, 0) - 2)
    e = tl.minimum(tl.maximum(e, -127), 127)
    # 2^-e and 2^e as exact float32 (2^-127 is subnormal)
    inv = tl.where(e == 127, 0x00400000, (127 - e) << 23).to(tl.float32, bitcast=True)
    scl = tl.where(e == -127, 0x00400000, (e + 127) << 23).to(tl.float32, bitcast=True)
    v = FP4_TO_F32(E2M1_CODE(a * inv[:, None])) * scl[:, None]
    v = tl.where(x < 0, -v, v)
    v = tl.where(has_nan[:, None] > 0, float("nan"), v)
    tl.store(y_ptr + offs, v.to(y_ptr.dtype.element_ty), mask=ok)


def _nvfp4_qdq(x_ptr, y_ptr, s2_ptr, numel, NB: tl.constexpr,
               MAX: tl.constexpr, E2M1_CODE: tl.constexpr, FP4_TO_F32: tl.constexpr, E4M3_ROUND: tl.constexpr):
    # x is contiguous and K % 16 == 0: view it as [numel // 16, 16] blocks
    blk = tl.program_id(0).to(tl.int64) * NB + tl.arange(0, NB)
    offs = blk[:, None] * 16 + tl.arange(0, 16)[None, :]
    ok = offs < numel
    x = tl.load(x_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    s2 = tl.load(s2_ptr)
    has_nan = MAX(tl.where(x != x, 1, 0))  # a NaN makes its block's scale NaN (as the reference)
    amax = MAX(tl.abs(x))
    raw = tl.math.div_rn(tl.math.div_rn(amax, 6.0), s2)
    bs = E4M3_ROUND(tl.minimum(tl.maximum(raw, 0.0), 448.0))
    step = bs * s2
    safe = tl.where(step > 0, step, 1.0)
    code = E2M1_CODE(tl.abs(tl.math.div_rn(x, safe[:, None])))
    code = tl.where(step[:, None] > 0, code, 0)
    v = FP4_TO_F32(code) * bs[:, None]
    v = tl.where(x < 0, -v, v)
    v = tl.where(has_nan[:, None] > 0, float("nan"), v)
    tl.store(y_ptr + offs, v.to(y_ptr.dtype.element_ty), mask=ok)


def _fp8_quant(x_ptr, y_ptr, s_ptr, numel, BLOCK: tl.constexpr, TO_E4M3: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < numel
    x = tl.load(x_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    q = tl.math.div_rn(x, tl.load(s_ptr))
    q = tl.minimum(tl.maximum(q, -448.0), 448.0)
    tl.store(y_ptr + offs, TO_E4M3(q).to(tl.uint8), mask=ok)


mxfp4_qdq_kernel = kernel(_mxfp4_qdq, MAX=(h.rowmax, h.rowmax_interpreted), E2M1_CODE=h.e2m1_code, FP4_TO_F32=h.fp4_to_f32)
nvfp4_qdq_kernel = kernel(_nvfp4_qdq, MAX=(h.rowmax, h.rowmax_interpreted), E2M1_CODE=h.e2m1_code, FP4_TO_F32=h.fp4_to_f32,
                          E4M3_ROUND=h.e4m3_round)
fp8_quant_kernel = kernel(_fp8_quant, TO_E4M3=h.f32_to_e4m3_bits)


def _rows(x: torch.Tensor) -> torch.Tensor:
    x2 = x.reshape(-1, x.shape[-1])
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


def mxfp4_qdq(x: torch.Tensor) -> torch.Tensor:
    """[..., K] (K % 32 == 0) -> bf16 [rows, K]."""
    x2 = _rows(x)
    r, k = x2.shape
    if k % 32:
        raise ValueError(f"mxfp4_qdq: K={k} is not a multiple of 32")
    y = torch.empty((r, k), dtype=torch.bfloat16, device=x.device)
    nb = 64
    if r:
        x2 = x2.contiguous()
        mxfp4_qdq_kernel.on(x.device)[(triton.cdiv(x2.numel() // 32, nb),)](x2, y, x2.numel(), NB=nb)
    return y


def nvfp4_qdq(x: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """[..., K] (K % 16 == 0), s2 scalar tensor -> bf16 [rows, K] code * block scale; times s2 it is
    the QDQ (kernels/nvfp4.qdq_nvfp4)."""
    x2 = _rows(x)
    r, k = x2.shape
    if k % 16:
        raise ValueError(f"nvfp4_qdq: K={k} is not a multiple of 16")
    s2 = torch.as_tensor(s2, dtype=torch.float32, device=x.device).reshape(1)
    y = torch.empty((r, k), dtype=torch.bfloat16, device=x.device)
    nb = 128
    if r:
        x2 = x2.contiguous()
        nvfp4_qdq_kernel.on(x.device)[(triton.cdiv(x2.numel() // 16, nb),)](x2, y, s2, x2.numel(), NB=nb)
    return y


def fp8_quant(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """[..., K] -> float8_e4m3fn [rows, K] with a per-tensor scale (x / scale, saturating)."""
    x2 = _rows(x).contiguous()
    s = torch.as_tensor(scale, dtype=torch.float32, device=x.device).reshape(1)
    y = torch.empty(x2.shape, dtype=torch.float8_e4m3fn, device=x.device)
    block = 1024
    if x2.numel():
        fp8_quant_kernel.on(x.device)[(triton.cdiv(x2.numel(), block),)](
            x2, y.view(torch.uint8), s, x2.numel(), BLOCK=block)
    return y
