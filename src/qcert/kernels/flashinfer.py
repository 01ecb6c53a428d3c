"""flashinfer backends (CUDA), imported lazily: this module imports without flashinfer.

- fp8_linear, backend "flashinfer": `flashinfer.bmm_fp8` (cuBLASLt fp8) for W8A8 with per-tensor
  weight and activation scales, on compute capability 8.9 or newer. Activations are quantized with
  the same saturating e4m3 cast as the reference; the result is written into `out=` by flashinfer.

- nvfp4_moe, backend "flashinfer", layout "trtllm": the TRT-LLM-gen FP4 MoE
  (`flashinfer.fused_moe.trtllm_fp4_block_scale_routed_moe`, sm100 kernels only) on experts in the
  TRT-LLM layout (kernels/layouts.trtllm_fp4_*, checked equal to flashinfer's own preparation by
  bench/flashinfer_layout_probe.py). W4A4 with one activation scale per GEMM: the input is
  quantized by `flashinfer.fp4_quantize` with global scale 1 / input_scale, and the per-expert
  scalars are the ones UPSTREAM.md section 4 gives (g1_alphas = a1 * w13_scale_2, g1_scale_c =
  g1_alphas / a2, g2_alphas = a2 * w2_scale_2). Not yet run on an sm100 machine: the GPU kernel
  cases check it there (on Hopper they skip naming the capability).
"""

from __future__ import annotations

import importlib.util

import torch

from .fp8 import to_e4m3_saturating
from .nvfp4 import moe_activation_scale
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


def moe_available(ctx: OpContext) -> "bool | str":
    if ctx.device_type != "cuda" or ctx.is_rocm:
        return "flashinfer needs an NVIDIA CUDA device"
    if ctx.capability is not None and ctx.capability[0] != 10:
        return f"the TRT-LLM-gen FP4 MoE kernels are built for sm100/sm103, device has {ctx.capability}"
    if ctx.dtype not in (torch.bfloat16, None):
        return f"the TRT-LLM-gen FP4 MoE writes bf16, activations are {ctx.dtype}"
    return _have_flashinfer()


def nvfp4_moe(x, w13, w13_scale, w13_scale_2, w2, w2_scale, w2_scale_2, topk_weights, topk_ids,
              w13_input_scale=None, w2_input_scale=None, out=None):
    if w13_input_scale is None or w2_input_scale is None:
        raise BackendUnavailable("nvfp4_moe", BACKEND, "the TRT-LLM FP4 MoE takes NVFP4 activations (W4A4) only")
    a1, a2 = (moe_activation_scale(s, x.device, BACKEND) for s in (w13_input_scale, w2_input_scale))
    import flashinfer
    from flashinfer.tllm_enums import RoutingMethodType

    e, two_i, _ = w13.shape
    xq, xs = flashinfer.fp4_quantize(x, (1.0 / a1).reshape(1), is_sf_swizzled_layout=False)
    g1 = a1 * w13_scale_2.to(torch.float32).reshape(-1).expand(e)
    g2 = a2 * w2_scale_2.to(torch.float32).reshape(-1).expand(e)
    if out is None:
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    flashinfer.fused_moe.trtllm_fp4_block_scale_routed_moe(
        topk_ids=(topk_ids.to(torch.int32), topk_weights.to(torch.float32)), routing_bias=None,
        hidden_states=xq, hidden_states_scale=xs.view(torch.float8_e4m3fn).reshape(-1),
        gemm1_weights=w13, gemm1_weights_scale=w13_scale.view(torch.float8_e4m3fn), gemm1_bias=None,
        gemm1_alpha=None, gemm1_beta=None, gemm1_clamp_limit=None,
        gemm2_weights=w2, gemm2_weights_scale=w2_scale.view(torch.float8_e4m3fn), gemm2_bias=None,
        output1_scale_scalar=(g1 / a2).contiguous(), output1_scale_gate_scalar=g1.contiguous(),
        output2_scale_scalar=g2.contiguous(), num_experts=e, top_k=topk_ids.shape[1], n_group=None,
        topk_group=None, intermediate_size=two_i // 2, local_expert_offset=0, local_num_experts=e,
        routed_scaling_factor=None, routing_method_type=int(RoutingMethodType.TopK), do_finalize=True,
        output=out,
    )
    return out


register_backend("nvfp4_moe", BACKEND, nvfp4_moe, moe_available, priority=40, layout="trtllm")
