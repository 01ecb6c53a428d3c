"""aiter backends (AMD ROCm), imported lazily: this module imports without aiter.

Bound entry points (names and argument order read from github.com/ROCm/aiter):
- mxfp4_linear, backend "aiter", layout "aiter_shuffle": `aiter.gemm_a4w4(A, B, A_scale, B_scale,
  ...)` (aiter/ops/gemm_op_a4w4.py: A [M, K/2] f4x2, B [N, K/2] f4x2 pre-shuffled (`bpreshuffle`),
  A_scale/B_scale e8m0 [rows, K/32] shuffled and padded; older releases take `out=` and return it,
  newer ones take `dtype=` and allocate). W4A4 only: activations are MXFP4-quantized here with the
  reference's rule, so the kernel sees exactly the codes the reference dequantizes.
- mxfp4_moe, backend "aiter", layout "aiter_shuffle": `aiter.fused_moe.fused_moe(hidden_states, w1,
  w2, topk_weight, topk_ids, activation=ActivationType.Silu, quant_type=QuantType.per_1x32,
  w1_scale=..., w2_scale=...)` (aiter/fused_moe.py; w1 [E, 2I, H] gate rows then up rows, w2
  [E, H, I], both shuffled with shuffle_weight, scales e8m0 shuffled). per_1x32 quantizes the
  activations to MXFP4 inside, so only W4A4 (act_qdq) is this backend's scope.

Weights and scales arrive already in aiter's layout, produced by kernels/layouts.py
(aiter_shuffle_weight, aiter_shuffle_scale), which is what the registry's layout "aiter_shuffle"
means; the kernel cases feed them through those transform ops.

Gate: a ROCm build of torch (torch.version.hip), a device whose arch is gfx950 (MI355: native
MXFP4 MFMA, where gemm_a4w4's kernels exist) or, for the MoE, gfx942 (MI300), and aiter importable.
None of this has run here (no AMD hardware): the binding follows the upstream signatures and is
checked by the rocm hardware cases in conformance/cases/test_kernels.py when a ROCm machine runs
them (`--hardware rocm`).
"""

from __future__ import annotations

import importlib.util
import inspect

import torch

from . import mxfp4 as mx
from .layouts import aiter_shuffle_scale
from .registry import BackendUnavailable, OpContext, register_backend

BACKEND = "aiter"
LAYOUT = "aiter_shuffle"
GEMM_ARCHS = ("gfx950",)
MOE_ARCHS = ("gfx942", "gfx950")


def _have_aiter() -> "bool | str":
    if importlib.util.find_spec("aiter") is None:
        return "aiter is not installed (ROCm: pip install aiter, or build github.com/ROCm/aiter)"
    return True


def _gate(ctx: OpContext, archs: tuple[str, ...], what: str) -> "bool | str":
    if ctx.device_type != "cuda" or not ctx.is_rocm:
        hip = torch.version.hip
        return f"aiter needs a ROCm GPU (device {ctx.device_type!r}, torch.version.hip={hip!r})"
    if ctx.gfx_arch not in archs:
        return f"aiter {what} needs {' or '.join(archs)}, device is {ctx.gfx_arch or 'unknown arch'}"
    if ctx.dtype not in (torch.bfloat16, torch.float16):
        return f"aiter {what} takes bf16/fp16 activations, got {ctx.dtype}"
    return _have_aiter()


def gemm_available(ctx: OpContext) -> "bool | str":
    return _gate(ctx, GEMM_ARCHS, "gemm_a4w4 (MXFP4 x MXFP4)")


def moe_available(ctx: OpContext) -> "bool | str":
    return _gate(ctx, MOE_ARCHS, "fused_moe (per_1x32 MXFP4)")


def _pad_rows(t: torch.Tensor, multiple: int) -> torch.Tensor:
    pad = -t.shape[0] % multiple
    return t if pad == 0 else torch.cat([t, t.new_zeros((pad, *t.shape[1:]))])


def mxfp4_linear(x, w_packed, w_scale, bias=None, act_qdq: bool = False, out=None):
    if not act_qdq:
        raise BackendUnavailable("mxfp4_linear", BACKEND, "gemm_a4w4 is W4A4; W4A16 is not its scope")
    import aiter

    n, k = w_packed.shape[0], x.shape[-1]
    x2 = x.reshape(-1, k)
    m = x2.shape[0]
    a_packed, a_scale = mx.quantize_mxfp4(x2)  # the reference's act_qdq codes
    a_packed = _pad_rows(a_packed, 32)
    a_scale = aiter_shuffle_scale(a_scale, pad=True)  # pads rows to 256, cols to 8, like aiter
    fp4x2 = getattr(torch, "float4_e2m1fn_x2", torch.uint8)
    e8m0 = getattr(torch, "float8_e8m0fnu", torch.uint8)
    args = (a_packed.view(fp4x2), w_packed.view(fp4x2), a_scale.view(e8m0), w_scale.view(e8m0))
    bias2 = None if bias is None else bias.to(torch.float32).reshape(1, n)
    if "out" in inspect.signature(aiter.gemm_a4w4).parameters:
        full = torch.empty((a_packed.shape[0], n), dtype=x.dtype, device=x.device)
        aiter.gemm_a4w4(*args, full, bias2, bpreshuffle=True)
    else:
        full = aiter.gemm_a4w4(*args, bias2, dtype=x.dtype, bpreshuffle=True)
    if out is None:
        out = torch.empty((*x.shape[:-1], n), dtype=x.dtype, device=x.device)
    out.view(m, n).copy_(full[:m])
    return out


def mxfp4_moe(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, act_qdq: bool = False, out=None):
    if not act_qdq:
        raise BackendUnavailable("mxfp4_moe", BACKEND,
                                 "fused_moe per_1x32 quantizes activations (W4A4); W4A16 is not bound")
    import aiter
    from aiter.fused_moe import fused_moe

    fp4x2 = getattr(torch, "float4_e2m1fn_x2", torch.uint8)
    e8m0 = getattr(torch, "float8_e8m0fnu", torch.uint8)
    y = fused_moe(x, w13.view(fp4x2), w2.view(fp4x2), topk_weights.to(torch.float32), topk_ids.to(torch.int32),
                  activation=aiter.ActivationType.Silu, quant_type=aiter.QuantType.per_1x32,
                  w1_scale=w13_scale.view(e8m0), w2_scale=w2_scale.view(e8m0))
    if out is None:
        return y
    out.copy_(y)
    return out


# gates looked up at call time, so a patched gate (conformance/mutants) is the one used
register_backend("mxfp4_linear", BACKEND, mxfp4_linear, lambda ctx: gemm_available(ctx), priority=30,
                 layout=LAYOUT)
register_backend("mxfp4_moe", BACKEND, mxfp4_moe, lambda ctx: moe_available(ctx), priority=30, layout=LAYOUT)
