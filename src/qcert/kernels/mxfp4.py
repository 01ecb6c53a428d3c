"""MXFP4: e2m1 values, one e8m0 scale per 32 elements along the last axis (K).

Shared exponent of a block with amax = m * 2^f (m in [1, 2)):
  "floor" (OCP spec):       f - 2
  "even"  (Quark/aiter):    floor(log2(R(amax))) - 2, R rounding amax to e2m1's 1-bit mantissa,
                            half to even; R bumps the exponent exactly when m >= 1.75.
Exponents are taken from the float32 bits (frexp), never from a float log2, so both are exact.
"""

from __future__ import annotations

import torch

from .fp4 import e2m1_to_float, e8m0_to_float, float_to_e2m1, pack_fp4, unpack_fp4

__all__ = ["BLOCK", "RULES", "dequantize_mxfp4", "mxfp4_scale_exponent", "qdq_mxfp4", "quantize_mxfp4"]

BLOCK = 32
RULES = ("even", "floor")
_EMIN, _EMAX = -127, 127  # e8m0 bytes 0..254; 255 is NaN


def _pow2(n: torch.Tensor) -> torch.Tensor:
    """Exact float32 2^n for integer n in [-149, 127], built from the bits (pow() may round)."""
    n = n.to(torch.int32)
    normal = (n + 127).clamp(min=0) << 23
    sub = torch.ones_like(n) << (n + 149).clamp(0, 22)
    return torch.where(n >= -126, normal, sub).view(torch.float32)


def _check_k(k: int, what: str) -> None:
    if k % BLOCK:
        raise ValueError(f"{what}: K={k} is not a multiple of the MXFP4 block size {BLOCK}")


def mxfp4_scale_exponent(amax: torch.Tensor, rule: str = "even") -> torch.Tensor:
    """Unbiased shared exponent (int32) per block amax, before clamping to the e8m0 range."""
    if rule not in RULES:
        raise ValueError(f"unknown MXFP4 scale rule {rule!r}; expected one of {RULES}")
    mant, ex = torch.frexp(amax.to(torch.float32))  # amax = mant * 2^ex, mant in [0.5, 1)
    e = ex.to(torch.int32) - 1  # floor(log2(amax))
    if rule == "even":
        e = e + (mant >= 0.875).to(torch.int32)  # normalised mantissa 2*mant >= 1.75 rounds up
    return e - 2


def quantize_mxfp4(x: torch.Tensor, rule: str = "even") -> tuple[torch.Tensor, torch.Tensor]:
    """x[..., K] -> (packed uint8 [..., K//2], e8m0 scales uint8 [..., K//32]).

    All-zero blocks get the smallest scale (byte 0) and zero codes. A block containing NaN gets
    the NaN scale 0xFF (codes zero) so the NaN survives dequantization; a block containing inf
    gets the largest scale (254) with inf saturating to +-6. Finite float32 data never needs more
    than byte 253 ("even") / 252 ("floor").
    """
    k = x.shape[-1]
    _check_k(k, "quantize_mxfp4")
    xb = x.to(torch.float32).reshape(*x.shape[:-1], k // BLOCK, BLOCK)
    amax = xb.abs().amax(dim=-1)
    e = mxfp4_scale_exponent(amax, rule)
    # inf: frexp gives no exponent; like aiter, clamp to the largest scale (values saturate to 6)
    e = torch.where(torch.isinf(amax), torch.full_like(e, _EMAX), e).clamp(_EMIN, _EMAX)
    e = torch.where(amax == 0, torch.full_like(e, _EMIN), e)
    nan_block = torch.isnan(amax)
    # x * 2^-e is exact: e is derived from amax, so nothing overflows and only values far below
    # the block amax (which round to 0 anyway) can land in the subnormal range.
    scaled = xb * _pow2(-e).unsqueeze(-1)
    codes = float_to_e2m1(scaled)
    codes = torch.where(nan_block.unsqueeze(-1), torch.zeros_like(codes), codes)
    scales = torch.where(nan_block, torch.full_like(e, 0xFF), e + 127).to(torch.uint8)
    return pack_fp4(codes.reshape(*x.shape[:-1], k)), scales


def dequantize_mxfp4(packed: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(packed [..., K//2], scales [..., K//32]) -> [..., K]. A 0xFF scale makes its block NaN."""
    k = packed.shape[-1] * 2
    _check_k(k, "dequantize_mxfp4")
    if tuple(scales.shape) != (*packed.shape[:-1], k // BLOCK):
        raise ValueError(
            f"dequantize_mxfp4: scales shape {tuple(scales.shape)} does not match packed "
            f"{tuple(packed.shape)} (expected {(*packed.shape[:-1], k // BLOCK)})"
        )
    vals = e2m1_to_float(unpack_fp4(packed)).reshape(*packed.shape[:-1], k // BLOCK, BLOCK)
    out = vals * e8m0_to_float(scales).unsqueeze(-1)
    return out.reshape(*packed.shape[:-1], k).to(dtype)


def qdq_mxfp4(x: torch.Tensor, rule: str = "even") -> torch.Tensor:
    """Quantize-dequantize along the last dim (dynamic MX activation quant); same dtype out."""
    packed, scales = quantize_mxfp4(x, rule)
    return dequantize_mxfp4(packed, scales, dtype=x.dtype)
