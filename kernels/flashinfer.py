"""flashinfer backends (CUDA), imported lazily: this module imports without flashinfer.

- fp8_linear, backend "flashinfer": `flashinfer.bmm_fp8` (cuBLASLt fp8) for W8A8 with per-tensor
  weight and activation scales, on compute capability 8.9 or newer. Activations are quantized with
  the same saturating e4m3 cast as the reference; the result is written into `out=` by flashinfer.

The TRT-LLM NVFP4 MoE kernels (sm100) are not bound yet: their routed entry point takes
pre-shuffled weights (kernels/layouts.trtllm_fp4_*) and packed top-k ids, and without an sm100
machine to check the binding against, a backend would be an unverified claim.
"""

from __future__ import annotations

import importlib.util

import torch

from .fp8 import to_e4m3_saturating
from .registry import BackendUnavailable, OpContext, register_backend

BACKEND = "flashinfer"


def _have_flashinfer() -> "bool | str":
    if importlib.util.find_spec("flashinfer") is None:
        return "flashinfer is not installed (pip install flashinfer-python apache-tvm-ffi)"
    return True


def fp8_available(ctx: OpContext) -> "bool | str":
    if ctx.device_type != "cuda" or ctx.is_rocm:
        return "flashinfer needs an NVIDIA CUDA device"
    if ctx.capability is not None and ctx.capability < (8, 9):
        return f"fp8 GEMM needs compute capability >= 8.9, device has {ctx.capability}"
    if ctx.dtype not in (torch.bfloat16, torch.float16):
        return f"bmm_fp8 writes bf16/fp16, activations are {ctx.dtype}"
    return _have_flashinfer()


def fp8_linear(x, w_fp8, w_scale, bias=None, input_scale=None, out=None, act_dynamic=False):
    if act_dynamic:
        raise BackendUnavailable("fp8_linear", BACKEND, "dynamic per-token activations are not a bmm_fp8 path")
    if input_scale is None:
        raise BackendUnavailable("fp8_linear", BACKEND, "W8A16 (no input_scale) is not a bmm_fp8 path")
    ws = torch.as_tensor(w_scale, dtype=torch.float32, device=x.device)
    if ws.numel() != 1:
        raise BackendUnavailable("fp8_linear", BACKEND, "bmm_fp8 takes per-tensor weight scales only")
    n, k = w_fp8.shape
    if n % 16 or k % 16:
        raise BackendUnavailable("fp8_linear", BACKEND, f"bmm_fp8 (cuBLASLt) needs N and K multiples of 16, got {n}x{k}")
    import flashinfer

    xs = torch.as_tensor(input_scale, dtype=torch.float32, device=x.device).reshape(1)
    xq = to_e4m3_saturating(x.reshape(-1, k).to(torch.float32) / xs).unsqueeze(0)
    m = xq.shape[1]
    if out is None:
        out = torch.empty((*x.shape[:-1], n), dtype=x.dtype, device=x.device)
    # B is [1, K, N] column-major: the transpose view of the row-major [N, K] weight
    flashinfer.bmm_fp8(xq, w_fp8.t().unsqueeze(0), xs, ws.reshape(1), x.dtype, out=out.view(1, m, n))
    if bias is not None:
        out.add_(bias.to(out.dtype))
    return out


register_backend("fp8_linear", BACKEND, fp8_linear, fp8_available, priority=40)
