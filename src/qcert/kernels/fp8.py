"""FP8 e4m3fn (max 448) with per-tensor or per-channel fp32 scales: value = fp8 * scale."""

from __future__ import annotations

import torch

__all__ = [
    "E4M3_MAX",
    "broadcast_scale",
    "dequantize_fp8",
    "qdq_fp8",
    "qdq_fp8_per_token",
    "quantize_fp8_per_channel",
    "quantize_fp8_per_tensor",
    "to_e4m3_saturating",
]

E4M3_MAX = 448.0


def to_e4m3_saturating(x: torch.Tensor) -> torch.Tensor:
    # Clamp explicitly: whether torch's cast saturates above 448 has differed between versions.
    # NaN stays NaN (clamp propagates it; e4m3fn has a NaN encoding).
    return x.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def _safe(scale: torch.Tensor) -> torch.Tensor:
    # An all-zero tensor/row has amax 0; scale 1 keeps it zero instead of 0/0 = NaN.
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize_fp8_per_tensor(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (e4m3fn, scale f32 scalar = amax/448)."""
    xf = x.to(torch.float32)
    scale = _safe(xf.abs().amax() / E4M3_MAX)
    return to_e4m3_saturating(xf / scale), scale


def quantize_fp8_per_channel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x[N, K] -> (e4m3fn [N, K], scale f32 [N, 1] = row amax/448)."""
    if x.dim() != 2:
        raise ValueError(f"quantize_fp8_per_channel: expected [N, K], got shape {tuple(x.shape)}")
    xf = x.to(torch.float32)
    scale = _safe(xf.abs().amax(dim=1, keepdim=True) / E4M3_MAX)
    return to_e4m3_saturating(xf / scale), scale


def broadcast_scale(scale: "torch.Tensor | float", ndim: int, device=None) -> torch.Tensor:
    """Scalar/[1] -> scalar; [N] -> [N, 1] (per output row); [N, 1] unchanged."""
    s = torch.as_tensor(scale, dtype=torch.float32, device=device)
    if s.numel() == 1:
        return s.reshape(())
    if s.dim() == 1:
        return s.reshape(-1, *([1] * (ndim - 1)))
    return s


def dequantize_fp8(w: torch.Tensor, scale, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """fp8 * scale; scale scalar, [N] or [N, 1]."""
    return (w.to(torch.float32) * broadcast_scale(scale, w.dim(), w.device)).to(dtype)


def qdq_fp8(x: torch.Tensor, scale) -> torch.Tensor:
    """Static activation quantize-dequantize with a given per-tensor scale, saturating at +-448."""
    s = torch.as_tensor(scale, dtype=torch.float32, device=x.device).reshape(())
    return (to_e4m3_saturating(x.to(torch.float32) / s).to(torch.float32) * s).to(x.dtype)


def qdq_fp8_per_token(x: torch.Tensor) -> torch.Tensor:
    """Dynamic activation quantize-dequantize, one scale per token (row amax / 448), as FP8_DYNAMIC
    (compressed-tensors `input_activations.strategy: token, dynamic: true`) kernels compute."""
    xf = x.to(torch.float32)
    s = _safe(xf.abs().amax(dim=-1, keepdim=True) / E4M3_MAX)
    return (to_e4m3_saturating(xf / s).to(torch.float32) * s).to(x.dtype)
