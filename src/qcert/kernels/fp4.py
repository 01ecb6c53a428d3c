"""e2m1 (FP4) codes, nibble packing and e8m0 scales.

Code layout: bits 0-2 index 0, 0.5, 1, 1.5, 2, 3, 4, 6; bit 3 is the sign. Two codes per byte along
the last axis, element 2j in the LOW nibble and 2j+1 in the HIGH nibble (all three producers, and the
byte layout of torch.float4_e2m1fn_x2).

torch 2.13 has float4_e2m1fn_x2 only as a storage dtype (no conversions), so the value tables here are
tested against ml_dtypes.float4_e2m1fn; e8m0 is tested against torch.float8_e8m0fnu and ml_dtypes.
"""

from __future__ import annotations

import torch

__all__ = [
    "E2M1_MAX",
    "E2M1_VALUES",
    "e2m1_to_float",
    "e8m0_to_float",
    "float_to_e2m1",
    "pack_fp4",
    "unpack_fp4",
]

E2M1_MAX = 6.0
E2M1_VALUES = torch.tensor(
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
    dtype=torch.float32,
)

# Magnitude thresholds between neighbouring codes, with the tie direction that makes the result the
# even code: at 0.25 (0|0.5) ties go down to code 0, at 0.75 (0.5|1) up to code 2, and so on.
# A magnitude's code = number of thresholds it passes ("gt" strictly above, "ge" at or above).
_THRESHOLDS = ((0.25, "gt"), (0.75, "ge"), (1.25, "gt"), (1.75, "ge"), (2.5, "gt"), (3.5, "ge"), (5.0, "gt"))


def float_to_e2m1(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest e2m1 value (ties to the even code), saturating at +-6.

    The sign bit is copied from x, so -0.0 and small negatives give code 8 (-0). e2m1 has no NaN:
    NaN maps to a signed zero (what ml_dtypes does); MX formats carry NaN in the block scale instead.
    """
    xf = x.to(torch.float32)
    a = xf.abs()
    code = torch.zeros(xf.shape, dtype=torch.uint8, device=xf.device)
    for t, mode in _THRESHOLDS:
        code += (a > t if mode == "gt" else a >= t).to(torch.uint8)
    code = torch.where(torch.isnan(xf), torch.zeros_like(code), code)
    return code | (torch.signbit(xf).to(torch.uint8) << 3)


def e2m1_to_float(codes: torch.Tensor) -> torch.Tensor:
    return E2M1_VALUES.to(codes.device)[(codes & 0xF).long()]


def pack_fp4(codes: torch.Tensor) -> torch.Tensor:
    """[..., K] codes -> [..., K//2] bytes (2j low nibble, 2j+1 high nibble)."""
    if codes.shape[-1] % 2:
        raise ValueError(f"pack_fp4: last dim K={codes.shape[-1]} must be even")
    c = codes.to(torch.uint8) & 0xF
    return c[..., 0::2] | (c[..., 1::2] << 4)


def unpack_fp4(packed: torch.Tensor) -> torch.Tensor:
    """[..., K//2] bytes -> [..., K] codes."""
    p = packed.view(torch.uint8) if packed.dtype != torch.uint8 else packed
    return torch.stack((p & 0xF, p >> 4), dim=-1).flatten(-2)


def e8m0_to_float(u: torch.Tensor) -> torch.Tensor:
    """e8m0 byte u -> 2^(u-127) as float32, built from the bits so it is exact; 0xFF -> NaN.

    u = 0 is 2^-127, a float32 subnormal (mantissa bit 22), hence the special case.
    """
    b = (u.view(torch.uint8) if u.dtype != torch.uint8 else u).to(torch.int32)
    bits = torch.where(b == 0, torch.full_like(b, 0x00400000), b << 23)
    bits = torch.where(b == 0xFF, torch.full_like(b, 0x7FC00000), bits)
    return bits.view(torch.float32)
