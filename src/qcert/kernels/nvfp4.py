"""NVFP4: e2m1 values, one fp8 e4m3 scale per 16 elements along K, one fp32 global scale.

ModelOpt stores the global scale as a multiplier, compressed-tensors (CT) as its reciprocal:
  ModelOpt: scale_2 = global_amax / (6*448);     block = e4m3(block_amax / 6 / scale_2)
            dequant = e2m1 * block * scale_2
  CT:       gs = bf16(448*6 / global_amax) (f32 [1]); block = e4m3(block_amax / 6 * gs)
            dequant = e2m1 * block / gs
Fused groups (q/k/v, gate/up, each expert's gate/up) share global_amax: callers pass the max.

Equivalence of the two conventions (tested in tests/kernels/test_nvfp4.py):
- Given the same quantization (same codes and block scales), ModelOpt and CT dequantize to the
  same tensor up to the bf16 rounding of CT's gs: elementwise relative difference <= 2^-9 (+ fp32
  rounding); exactly equal when 448*6/global_amax is a bf16 number (then gs == 1/scale_2 exactly
  whenever scale_2 is a power of two).
- Each producer quantizing the same BF16 weights itself is NOT bit-identical: gs's bf16 rounding
  moves block_amax/6*gs across e4m3 rounding boundaries in a few blocks, which changes those
  blocks' scales (and then codes). Both stay within the NVFP4 quantization error of the weights.
"""

from __future__ import annotations

import torch

from .fp4 import E2M1_MAX, e2m1_to_float, float_to_e2m1, pack_fp4, unpack_fp4

__all__ = [
    "BLOCK",
    "E4M3_MAX",
    "ct_global_scale",
    "ct_global_scale_from_modelopt",
    "dequantize_nvfp4",
    "dequantize_nvfp4_ct",
    "modelopt_scale_2_from_ct",
    "qdq_nvfp4",
    "quantize_nvfp4",
    "quantize_nvfp4_ct",
]

BLOCK = 16
E4M3_MAX = 448.0


def _check_k(k: int, what: str) -> None:
    if k % BLOCK:
        raise ValueError(f"{what}: K={k} is not a multiple of the NVFP4 block size {BLOCK}")


def _blocks(x: torch.Tensor, what: str) -> torch.Tensor:
    _check_k(x.shape[-1], what)
    return x.to(torch.float32).reshape(*x.shape[:-1], x.shape[-1] // BLOCK, BLOCK)


def _encode(xb: torch.Tensor, step: torch.Tensor, shape) -> torch.Tensor:
    """Codes for blocks xb given each block's effective step (block scale times global)."""
    step = step.unsqueeze(-1)
    # A block whose e4m3 scale is 0 (all-zero block, or underflow) encodes as zeros.
    codes = float_to_e2m1(xb / torch.where(step > 0, step, 1.0))
    codes = torch.where(step > 0, codes, torch.zeros_like(codes))
    return pack_fp4(codes.reshape(shape))


def _to_e4m3(s: torch.Tensor) -> torch.Tensor:
    # Explicit saturation: activations can exceed their calibrated amax, and torch's cast
    # behaviour above 448 has changed between versions.
    return s.clamp(0.0, E4M3_MAX).to(torch.float8_e4m3fn)


def _quantize_given_scale_2(x: torch.Tensor, scale_2: torch.Tensor, what: str):
    xb = _blocks(x, what)
    s2 = scale_2.to(torch.float32).reshape(())
    block_amax = xb.abs().amax(dim=-1)
    bs = _to_e4m3(torch.where(s2 > 0, block_amax / E2M1_MAX / s2, torch.zeros_like(block_amax)))
    return _encode(xb, bs.to(torch.float32) * s2, x.shape), bs


def _global_amax(x: torch.Tensor, global_amax, what: str) -> torch.Tensor:
    local = x.detach().abs().amax().to(torch.float32)
    if global_amax is None:
        return local
    g = torch.as_tensor(global_amax, dtype=torch.float32, device=x.device).reshape(())
    if not bool(g >= local):
        raise ValueError(f"{what}: global_amax {float(g)} is below the tensor's amax {float(local)}")
    return g


def quantize_nvfp4(x: torch.Tensor, global_amax: "float | torch.Tensor | None" = None):
    """ModelOpt convention. x[..., K] -> (packed uint8 [..., K//2], block_scale e4m3 [..., K//16],
    scale_2 f32 scalar). global_amax defaults to x's amax; pass the fused group's max."""
    g = _global_amax(x, global_amax, "quantize_nvfp4")
    scale_2 = g / (E2M1_MAX * E4M3_MAX)
    packed, bs = _quantize_given_scale_2(x, scale_2, "quantize_nvfp4")
    return packed, bs, scale_2


def _broadcast_global(s: torch.Tensor, ndim: int) -> torch.Tensor:
    """Scalar/[1] stays scalar; [N] (per row) or [E] (per expert) broadcasts over leading dims."""
    s = s.to(torch.float32)
    if s.numel() == 1:
        return s.reshape(())
    return s.reshape(*s.shape, *([1] * (ndim - s.dim())))


def _values_times_block(packed: torch.Tensor, block_scale: torch.Tensor, what: str) -> torch.Tensor:
    k = packed.shape[-1] * 2
    _check_k(k, what)
    if tuple(block_scale.shape) != (*packed.shape[:-1], k // BLOCK):
        raise ValueError(
            f"{what}: block_scale shape {tuple(block_scale.shape)} does not match packed "
            f"{tuple(packed.shape)} (expected {(*packed.shape[:-1], k // BLOCK)})"
        )
    vals = e2m1_to_float(unpack_fp4(packed)).reshape(*packed.shape[:-1], k // BLOCK, BLOCK)
    # e2m1 (2 significant bits) * e4m3 (4 bits) is exact in fp32.
    return (vals * block_scale.to(torch.float32).unsqueeze(-1)).reshape(*packed.shape[:-1], k)


def dequantize_nvfp4(packed, block_scale, scale_2, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """e2m1 * block_scale * scale_2; scale_2 scalar, [1], per row [N] or per expert [E]."""
    v = _values_times_block(packed, block_scale, "dequantize_nvfp4")
    return (v * _broadcast_global(torch.as_tensor(scale_2, device=v.device), v.dim())).to(dtype)


def qdq_nvfp4(x: torch.Tensor, scale_2: "float | torch.Tensor") -> torch.Tensor:
    """Activation quantize-dequantize with a static global scale (ModelOpt input_scale =
    amax/(6*448)); block scales are dynamic per 16 elements and saturate at 448."""
    s2 = torch.as_tensor(scale_2, dtype=torch.float32, device=x.device)
    packed, bs = _quantize_given_scale_2(x, s2, "qdq_nvfp4")
    return dequantize_nvfp4(packed, bs, s2, dtype=x.dtype)


# --- compressed-tensors convention -------------------------------------------------------------


def ct_global_scale(global_amax: "float | torch.Tensor") -> torch.Tensor:
    """CT's weight_global_scale: 448*6/amax computed in f32, rounded to bf16, stored f32 [1]."""
    g = torch.as_tensor(global_amax, dtype=torch.float32).reshape(1)
    return ((E4M3_MAX * E2M1_MAX) / g).to(torch.bfloat16).to(torch.float32)


def modelopt_scale_2_from_ct(global_scale: torch.Tensor) -> torch.Tensor:
    """CT global scale [1] -> ModelOpt-style scale_2 (f32 scalar), the reciprocal."""
    return (1.0 / torch.as_tensor(global_scale, dtype=torch.float32)).reshape(())


def ct_global_scale_from_modelopt(scale_2: torch.Tensor) -> torch.Tensor:
    """ModelOpt scale_2 -> CT global scale [1] (bf16-rounded reciprocal, like CT writes it)."""
    return (1.0 / torch.as_tensor(scale_2, dtype=torch.float32).reshape(1)).to(torch.bfloat16).to(torch.float32)


def quantize_nvfp4_ct(x: torch.Tensor, global_amax: "float | torch.Tensor | None" = None):
    """CT convention: -> (packed, block_scale e4m3, weight_global_scale f32 [1])."""
    g = _global_amax(x, global_amax, "quantize_nvfp4_ct")
    gs = ct_global_scale(g).to(x.device)
    xb = _blocks(x, "quantize_nvfp4_ct")
    block_amax = xb.abs().amax(dim=-1)
    # gs is rounded, so block_amax/6*gs can exceed 448 slightly: saturate.
    bs = _to_e4m3(block_amax / E2M1_MAX * gs)
    return _encode(xb, bs.to(torch.float32) / gs, x.shape), bs, gs


def dequantize_nvfp4_ct(packed, block_scale, global_scale, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """e2m1 * block_scale / global_scale (CT)."""
    v = _values_times_block(packed, block_scale, "dequantize_nvfp4_ct")
    return (v / _broadcast_global(torch.as_tensor(global_scale, device=v.device), v.dim())).to(dtype)


def moe_activation_scale(scale, device, backend: str) -> torch.Tensor | None:
    """The one activation global scale a W4A4 NVFP4 MoE kernel quantizes its input with (activations
    are quantized before dispatch, once for all experts), as a 0-d fp32 tensor; None for W4A16.
    Per-expert scales that differ are not such a kernel's path: BackendUnavailable names `backend`."""
    if scale is None:
        return None
    s = torch.as_tensor(scale, dtype=torch.float32, device=device).reshape(-1)
    if s.numel() > 1 and not bool((s == s[0]).all()):
        from .registry import BackendUnavailable

        raise BackendUnavailable("nvfp4_moe", backend, "per-expert activation input scales that differ")
    return s[0]
