"""Registers the triton backends (name "triton") of the kernel ops.

Importing this module needs triton; without it the registry records why and the ops keep their
other backends. Every backend function takes `out=` (a contiguous buffer of the result's shape
and dtype) and writes every element of it.
"""

from __future__ import annotations

import torch
import triton  # noqa: F401  (ImportError here = triton not installed, reported by the registry)

from ..registry import register_backend
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


def mxfp4_linear(x, w_packed, w_scale, bias=None, act_qdq: bool = False, out=None):
    n, k = w_packed.shape[0], x.shape[-1]
    x2 = x.reshape(-1, k)
    a = mxfp4_qdq(x2) if act_qdq else x2
    y = fp4_gemm(a, w_packed, w_scale, E8M0, bias=bias, out_dtype=x.dtype, out=_linear_out(x, n, out, "mxfp4_linear"))
    return out if out is not None else y.reshape(*x.shape[:-1], n)


def nvfp4_linear(x, w_packed, w_block_scale, w_scale_2, bias=None, input_scale=None, out=None):
    n, k = w_packed.shape[0], x.shape[-1]
    x2 = x.reshape(-1, k)
    a = nvfp4_qdq(x2, input_scale) if input_scale is not None else x2
    g = torch.as_tensor(w_scale_2, dtype=torch.float32, device=x.device).reshape(-1)
    if g.numel() not in (1, n):
        raise ValueError(f"nvfp4_linear: w_scale_2 has {g.numel()} values for N={n} rows")
    y = fp4_gemm(a, w_packed, w_block_scale, E4M3, g=g.expand(n).reshape(1, n), bias=bias, out_dtype=x.dtype,
                 out=_linear_out(x, n, out, "nvfp4_linear"))
    return out if out is not None else y.reshape(*x.shape[:-1], n)


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
