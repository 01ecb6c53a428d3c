"""Tolerances, in one place, as relative Frobenius error ||out - ref|| / ||ref||.

TOLERANCES: a backend's output vs the torch reference given the SAME quantized weights. Error
sources are output rounding to the model dtype (bf16: ~2^-9/sqrt(3) = 1.1e-3 rms), accumulation
order, and for activation-quantizing (W4A4/W8A8) kernels rare code flips where an accumulation
difference moves a value across a rounding tie. Bounds sit ~5-10x above what correct kernels
measure and far below what layout/scale bugs produce (O(1)); the fp4 bounds are also below the
5.6% difference between the MXFP4 "even" and "floor" activation rules, so a kernel using the wrong
rule fails.

QDQ_BOUNDS: quantize->dequantize error of the format itself on Gaussian data with per-row
magnitude spread (measured: mxfp4 0.112-0.117, nvfp4 0.094-0.098, fp8 0.027, bf16 0.0017).
"""

from __future__ import annotations

import torch

__all__ = ["ACT_QDQ_FLOOR", "ACT_QDQ_FORWARD_BOUNDS", "GPU_FORWARD_BOUNDS", "QDQ_BOUNDS", "TOLERANCES",
           "assert_close_rel", "fmt_of", "rel_error"]

TOLERANCES: dict[str, float] = {
    "fp32": 1e-5,
    "fp16": 2e-3,
    "bf16": 1e-2,
    "fp8": 1.5e-2,
    "mxfp4": 2e-2,
    "nvfp4": 2e-2,
}

QDQ_BOUNDS: dict[str, float] = {
    "bf16": 2.5e-3,
    "fp8": 3.5e-2,
    "nvfp4": 0.11,
    "mxfp4": 0.13,
}

# Logits of a checkpoint that quantizes activations (W4A4 / W8A8, static or dynamic) vs its float twin
# (same dequantized weights, activations unquantized): activation rounding alone through a tiny
# fixture's few layers. Measured (MoE experts only quantized, 2 layers): nvfp4 0.08-0.11, fp8 per-token
# 0.02-0.06; whole tiny models: nvfp4 0.20-0.27, fp8 0.04-0.09, mxfp4 0.30-0.42 (numerics cases).
# Wrong nibble order / scale / lost reciprocal measure > 1.
ACT_QDQ_FORWARD_BOUNDS: dict[str, float] = {"nvfp4": 0.4, "fp8": 0.15, "mxfp4": 0.6}
# Logits of a checkpoint on the GPU (bf16, the kernels the registry picks there) vs the same checkpoint
# on the CPU in bf16 (the torch reference). Measured on the H100 (numerics/gpu-forward-matches-cpu,
# bench/results/h100-qcert-run.md): every fp4 subject below 5e-4, W4A4 included (the kernels decode
# exactly and add in fp32, as the reference); fp8 W8A8 0.07-0.12, where the reference rounds to bf16 at
# other points (each is as far from a float32 CPU run as the other: 0.07-0.17 and 0.09-0.13). A wrong
# layout, nibble order or scale measures O(1).
GPU_FORWARD_BOUNDS: dict[str, float] = {"fp4": 1e-2, "fp8": 0.3}
# The other side: weight-only paths match the twin to ~1e-6, so an error below this floor means the
# activations were NOT quantized (input scales ignored, dynamic quantization skipped).
ACT_QDQ_FLOOR = 1e-3

_DTYPE_FMT = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float8_e4m3fn: "fp8"}


def fmt_of(fmt: "str | torch.dtype") -> str:
    key = _DTYPE_FMT.get(fmt, fmt) if isinstance(fmt, torch.dtype) else fmt
    if key not in TOLERANCES:
        raise KeyError(f"no tolerance for format {fmt!r}; known: {sorted(TOLERANCES)}")
    return key


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64; NaN if either side has NaN/inf; 0/0 (both zero) is 0."""
    o, r = out.detach().to(torch.float64).cpu(), ref.detach().to(torch.float64).cpu()
    if not (torch.isfinite(o).all() and torch.isfinite(r).all()):
        return float("nan")
    num, den = float((o - r).norm()), float(r.norm())
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


def assert_close_rel(out: torch.Tensor, ref: torch.Tensor, fmt: "str | torch.dtype", what: str = "", bound: float | None = None) -> float:
    """Fail unless rel_error(out, ref) <= the format's bound; returns the measured error.
    Shape mismatches, NaN and inf never pass."""
    key = fmt_of(fmt)
    tol = TOLERANCES[key] if bound is None else bound
    label = f"{what}: " if what else ""
    if tuple(out.shape) != tuple(ref.shape):
        raise AssertionError(f"{label}shape {tuple(out.shape)} != reference {tuple(ref.shape)}")
    err = rel_error(out, ref)
    if not err <= tol:  # also catches NaN
        d = (out.detach().double().cpu() - ref.detach().double().cpu()).abs()
        d = torch.nan_to_num(d, nan=float("inf"))
        worst = tuple(int(i) for i in torch.unravel_index(d.argmax(), d.shape)) if d.numel() else ()
        detail = (
            f"non-finite values (out NaN={int(torch.isnan(out).sum())}, ref NaN={int(torch.isnan(ref).sum())}, "
            f"out inf={int(torch.isinf(out).sum())})"
            if not (torch.isfinite(out).all() and torch.isfinite(ref).all())
            else f"relative error {err:.3e} > bound {tol:.1e}"
        )
        raise AssertionError(
            f"{label}{key}: {detail}; ||ref||={float(ref.double().norm()):.4g}, "
            f"worst element {worst}: out={float(out.reshape(-1)[d.argmax()]) if d.numel() else None} "
            f"ref={float(ref.reshape(-1)[d.argmax()]) if d.numel() else None}"
        )
    return err
