"""Registers the triton backends (name "triton") of the kernel ops.

Importing this module needs triton; without it the registry records why and the ops keep their
other backends. Every backend function takes `out=` (a contiguous buffer of the result's shape
and dtype) and writes every element of it.
"""

from __future__ import annotations

import torch
import triton  # (ImportError here = triton not installed, reported by the registry)

from ..registry import register_backend
from . import fp4_gemv_mma, fp4_wgmma
from ._launch import available, check_out
from .act_quant import mxfp4_qdq, nvfp4_qdq
from .fp4_gemm import E4M3, E8M0, fp4_gemm
from .fp8_gemm import fp8_gemm
from .moe import mxfp4_moe, nvfp4_moe

BACKEND = "triton"


def _linear_out(x: torch.Tensor, n: int, out: torch.Tensor | None, what: str) -> torch.Tensor | None:
    if out is None:
        return None
    return check_out(out, (*x.shape[:-1], n), x.dtype, x.device, what).view(-1, n)


def mxfp4_linear(x, w_packed, w_scale, bias=None, act_qdq: bool = False, out=None, tiled: bool = False,
                 wgmma: bool = False):
    n, k = w_packed.shape[0], x.shape[-1]
    x2 = x.reshape(-1, k)
    a = mxfp4_qdq(x2) if act_qdq else x2
    y = fp4_gemm(a, w_packed, w_scale, E8M0, bias=bias, out_dtype=x.dtype, out=_linear_out(x, n, out, "mxfp4_linear"),
                 tiled=tiled, wgmma=wgmma)
    return out if out is not None else y.reshape(*x.shape[:-1], n)


def nvfp4_linear(x, w_packed, w_block_scale, w_scale_2, bias=None, input_scale=None, out=None, tiled: bool = False,
                 wgmma: bool = False):
    n, k = w_packed.shape[0], x.shape[-1]
    x2 = x.reshape(-1, k)
    g = torch.as_tensor(w_scale_2, dtype=torch.float32, device=x.device).reshape(-1)
    if g.numel() not in (1, n):
        raise ValueError(f"nvfp4_linear: w_scale_2 has {g.numel()} values for N={n} rows")
    a = x2
    if input_scale is not None:  # W4A4: code * block scale; the activations' global scale joins g
        a = nvfp4_qdq(x2, input_scale)
        g = g * torch.as_tensor(input_scale, dtype=torch.float32, device=x.device).reshape(())
    y = fp4_gemm(a, w_packed, w_block_scale, E4M3, g=g.expand(n).reshape(1, n), bias=bias, out_dtype=x.dtype,
                 out=_linear_out(x, n, out, "nvfp4_linear"), tiled=tiled, wgmma=wgmma)
    return out if out is not None else y.reshape(*x.shape[:-1], n)


def mxfp4_linear_tiles(x, w_packed, w_scale, bias=None, act_qdq: bool = False, out=None):
    """mxfp4_linear on weights in layouts.fp4_tiles (the engine applies it at load)."""
    return mxfp4_linear(x, w_packed, w_scale, bias, act_qdq, out, tiled=True)


def nvfp4_linear_tiles(x, w_packed, w_block_scale, w_scale_2, bias=None, input_scale=None, out=None):
    return nvfp4_linear(x, w_packed, w_block_scale, w_scale_2, bias, input_scale, out, tiled=True)


def fp8_linear(x, w_fp8, w_scale, bias=None, input_scale=None, out=None, act_dynamic=False):
    if act_dynamic:  # FP8_DYNAMIC: per-token activation QDQ, then the weight-only GEMM
        from ..fp8 import qdq_fp8_per_token

        x = qdq_fp8_per_token(x)
    return fp8_gemm(x, w_fp8, w_scale, bias=bias, input_scale=input_scale, out=out)


for _op, _fn in (
    ("mxfp4_linear", mxfp4_linear),
    ("nvfp4_linear", nvfp4_linear),
    ("fp8_linear", fp8_linear),
    ("mxfp4_moe", mxfp4_moe),
    ("nvfp4_moe", nvfp4_moe),
):
    register_backend(_op, BACKEND, _fn, available, priority=50)

# The same kernels on weights in the GEMV tile layout (engine/quant/fp4_tiles_layout.py applies it
# per layer when the selected backend consumes it; plain layers keep BACKEND).
TILES = "triton_tiles"


def _tiles_available(ctx) -> "bool | str":
    """triton's check, and the layout pays only where its GEMV runs: bf16 or fp16 on NVIDIA (mma.sync)."""
    ok = available(ctx)
    if ok is not True:
        return ok
    if ctx.is_rocm:
        return "the fp4_tiles GEMV is NVIDIA-only (mma.sync); ROCm keeps the plain layout"
    if ctx.dtype is not None and ctx.dtype not in fp4_gemv_mma.ACT_DTYPES:
        return f"activation dtype {ctx.dtype}: the fp4_tiles GEMV takes bf16 or fp16"
    return True


# The tile layout's GEMV is the faster one on the H100 (bench/results/h100-triton.md: 1.17-1.24x the
# plain layout at M = 1..8 with the word map), so preferred over BACKEND.
for _op, _fn in (("mxfp4_linear", mxfp4_linear_tiles), ("nvfp4_linear", nvfp4_linear_tiles)):
    register_backend(_op, TILES, _fn, _tiles_available, priority=45, layout="fp4_tiles")


# The same again with 8 < M <= 16 on Hopper's warpgroup MMA (fp4_wgmma): correct, but slower than the
# mma.sync GEMV on the H100 at the shapes measured (bench/results/h100-triton.md), so run only when
# asked for (`QCERT_BACKEND_MXFP4_LINEAR=triton_wgmma`, or the engine's `backends=`); the GPU kernel
# cases check it like the others.
WGMMA = "triton_wgmma"


def mxfp4_linear_wgmma(x, w_packed, w_scale, bias=None, act_qdq: bool = False, out=None):
    return mxfp4_linear(x, w_packed, w_scale, bias, act_qdq, out, tiled=True, wgmma=True)


def nvfp4_linear_wgmma(x, w_packed, w_block_scale, w_scale_2, bias=None, input_scale=None, out=None):
    return nvfp4_linear(x, w_packed, w_block_scale, w_scale_2, bias, input_scale, out, tiled=True, wgmma=True)


def _wgmma_available(ctx) -> "bool | str":
    """The tile layout's check, bf16 activations, on an sm_90 GPU with Gluon (wgmma is sm_90a's)."""
    ok = _tiles_available(ctx)
    if ok is not True:
        return ok
    if ctx.dtype is not None and ctx.dtype != torch.bfloat16:
        return f"activation dtype {ctx.dtype}: the warpgroup-MMA GEMV takes bf16"
    if not fp4_wgmma.available():
        return f"triton {triton.__version__} has no Gluon (triton.experimental.gluon)"
    if ctx.device_type != "cuda" or ctx.capability != (9, 0):
        where = f"compute capability {ctx.capability}" if ctx.device_type == "cuda" else f"device {ctx.device_type!r}"
        return f"the warpgroup-MMA GEMV runs on sm_90 (Hopper) GPUs only, not on {where}"
    return True


for _op, _fn in (("mxfp4_linear", mxfp4_linear_wgmma), ("nvfp4_linear", nvfp4_linear_wgmma)):
    register_backend(_op, WGMMA, _fn, _wgmma_available, priority=46, layout="fp4_tiles", on_request=True)


# The MoE on experts in layouts.fp4_words (engine/quant/fp4_words_layout.py applies it at load): the
# grouped GEMMs decode each word in fewer instructions (docs/kernels.md); preferred over BACKEND since
# its first hardware run passed (bench/results/h100-qcert-run.md, 2026-12-07).
WORDS = "triton_words"


def mxfp4_moe_words(*args, **kwargs):
    return mxfp4_moe(*args, **kwargs, words=True)


def nvfp4_moe_words(*args, **kwargs):
    return nvfp4_moe(*args, **kwargs, words=True)


for _op, _fn in (("mxfp4_moe", mxfp4_moe_words), ("nvfp4_moe", nvfp4_moe_words)):
    register_backend(_op, WORDS, _fn, available, priority=45, layout="fp4_words")
