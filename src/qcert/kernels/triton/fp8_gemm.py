"""FP8 e4m3 weight GEMM, per-tensor or per-channel weight scales, fp32 accumulation.

Two modes:
- W8A16 (no input_scale): fp8 weights upcast in the kernel (exact in bf16), activations as given.
- W8A8 (static input_scale): activations quantized to e4m3 first (act_quant.fp8_quant), then an
  fp8 x fp8 tensor-core dot; the epilogue multiplies input_scale * w_scale[n].

On a GPU fp8 tiles go to tl.dot natively; interpreted (CPU) runs decode the e4m3 bits by hand
(the interpreter's fp8 conversions mishandle subnormals) and dot in fp32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _helpers as h
from ._launch import check_out, device_facts, dot_precision, kernel, round_into, store_buffer
from .act_quant import fp8_quant


def _fp8_gemm(
    a_ptr, w_ptr, ws_ptr, as_ptr, bias_ptr, c_ptr,
    M, N, K, stride_am, stride_wn, stride_cm,
    W8A8: tl.constexpr, PER_CHANNEL: tl.constexpr, HAS_BIAS: tl.constexpr, NATIVE: tl.constexpr,
    DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, ITERS: tl.constexpr, E4M3_TO_F32: tl.constexpr, ACT_DOT: tl.constexpr,
):
    pid = tl.program_id(0)
    grid_m = (M + BLOCK_M - 1) // BLOCK_M
    grid_n = (N + BLOCK_N - 1) // BLOCK_N
    # grouped ordering: GROUP_M row-blocks share each column-block while it sits in L2
    width = GROUP_M * grid_n
    group = pid // width
    first_m = group * GROUP_M
    size_m = tl.minimum(grid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % size_m
    pid_n = (pid % width) // size_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok = offs_m < M
    n_ok = offs_n < N
    a_ptrs = a_ptr + offs_m.to(tl.int64)[:, None] * stride_am + offs_k[None, :]
    w_ptrs = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn + offs_k[None, :]
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    for it in range(ITERS):
        k_ok = (it * BLOCK_K + offs_k) < K
        if NATIVE:
            a = tl.load(a_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            w = tl.load(w_ptrs, mask=n_ok[:, None] & k_ok[None, :], other=0.0)
            if W8A8:
                acc = tl.dot(a, tl.trans(w), acc)
            else:
                acc = ACT_DOT(a, tl.trans(w), acc, DOT, True)
        else:
            w = E4M3_TO_F32(tl.load(w_ptrs, mask=n_ok[:, None] & k_ok[None, :], other=0).to(tl.int32))
            if W8A8:
                a = E4M3_TO_F32(tl.load(a_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0).to(tl.int32))
            else:
                a = tl.load(a_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0.0).to(tl.float32)
            acc = tl.dot(a, tl.trans(w), acc, input_precision="ieee")
        a_ptrs += BLOCK_K
        w_ptrs += BLOCK_K

    if PER_CHANNEL:
        acc = acc * tl.load(ws_ptr + offs_n, mask=n_ok, other=0.0)[None, :]
    else:
        acc = acc * tl.load(ws_ptr)
    if W8A8:
        acc = acc * tl.load(as_ptr)
    if HAS_BIAS:
        acc = acc + tl.load(bias_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    c_ptrs = c_ptr + offs_m.to(tl.int64)[:, None] * stride_cm + offs_n[None, :]
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


fp8_gemm_kernel = kernel(_fp8_gemm, E4M3_TO_F32=h.e4m3_to_f32, ACT_DOT=h.act_dot)


def _fp8_gemm_tma(
    a_desc, w_desc, ws_ptr, as_ptr, bias_ptr, c_ptr, M, N, K, stride_cm,
    PER_CHANNEL: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, NUM_SMS: tl.constexpr, FLATTEN: tl.constexpr,
    WARP_SPECIALIZE: tl.constexpr,
):
    """W8A8 on Hopper: a persistent grid (one program per SM walks the output tiles in grouped
    order) fed by the copy engine (TMA descriptors), so loads need no address arithmetic."""
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    k_tiles = tl.cdiv(K, BLOCK_K)
    scale_a = tl.load(as_ptr)
    if not PER_CHANNEL:
        scale_a = scale_a * tl.load(ws_ptr)
    for tile in tl.range(tl.program_id(0), grid_m * grid_n, NUM_SMS, flatten=FLATTEN,
                         warp_specialize=WARP_SPECIALIZE):
        width = GROUP_M * grid_n
        first_m = (tile // width) * GROUP_M
        size_m = tl.minimum(grid_m - first_m, GROUP_M)
        pid_m = first_m + (tile % width) % size_m
        pid_n = (tile % width) // size_m
        off_m = pid_m * BLOCK_M
        off_n = pid_n * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
        for kt in range(k_tiles):
            a = a_desc.load([off_m, kt * BLOCK_K])
            w = w_desc.load([off_n, kt * BLOCK_K])
            acc = tl.dot(a, w.T, acc)
        offs_m = off_m + tl.arange(0, BLOCK_M)
        offs_n = off_n + tl.arange(0, BLOCK_N)
        n_ok = offs_n < N
        acc = acc * scale_a
        if PER_CHANNEL:
            acc = acc * tl.load(ws_ptr + offs_n, mask=n_ok, other=0.0)[None, :]
        if HAS_BIAS:
            acc = acc + tl.load(bias_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        c_ptrs = c_ptr + offs_m.to(tl.int64)[:, None] * stride_cm + offs_n[None, :]
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(offs_m < M)[:, None] & n_ok[None, :])


fp8_gemm_tma_kernel = kernel(_fp8_gemm_tma)  # GPU only (TMA); wrapped like the others so the
# TRITON_INTERPRET setting at import time cannot turn it into an interpreted function

# (BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages, flatten, warp_specialize)
TMA_CONFIG = (128, 256, 128, 8, 8, 3, False, False)


def tma_usable(a: torch.Tensor, w: torch.Tensor) -> bool:
    """The persistent TMA kernel: Hopper or newer NVIDIA GPUs, prefill-sized M, 16-byte strides."""
    if a.device.type != "cuda" or torch.version.hip is not None:
        return False
    m, k = a.shape
    return (device_facts(a.device)[0] >= (9, 0) and m >= 256 and k % 16 == 0
            and a.stride(0) % 16 == 0 and w.stride(0) % 16 == 0 and a.data_ptr() % 16 == 0 and w.data_ptr() % 16 == 0)


def fp8_gemm_tma(a: torch.Tensor, w: torch.Tensor, ws: torch.Tensor, a_s: torch.Tensor, bias, c: torch.Tensor,
                 config: tuple | None = None) -> torch.Tensor:
    """c = (a @ w^T) * a_s * ws (+ bias) for fp8 a [M, K], w [N, K] (see tma_usable)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    bm, bn, bk, gm, warps, stages, flatten, ws_flag = config or TMA_CONFIG
    m, k = a.shape
    n = w.shape[0]
    programs = min(device_facts(a.device)[1], triton.cdiv(m, bm) * triton.cdiv(n, bn))  # persistent: <= 1 per SM
    fp8_gemm_tma_kernel.on(a.device)[(programs,)](
        TensorDescriptor.from_tensor(a, [bm, bk]), TensorDescriptor.from_tensor(w, [bn, bk]),
        ws, a_s, bias if bias is not None else ws, c, m, n, k, c.stride(0),
        PER_CHANNEL=ws.numel() != 1, HAS_BIAS=bias is not None, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=gm,
        NUM_SMS=programs, FLATTEN=flatten, WARP_SPECIALIZE=ws_flag, num_warps=warps, num_stages=stages,
    )
    return c


def _config(m: int, n: int, k: int, device: torch.device, w8a8: bool) -> tuple[int, int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages)."""
    if device.type == "cpu":
        return 16, 32, 32, 4, 4, 1
    if m <= 64:
        return 64, 64, 128, 8, 4, 4
    if w8a8:
        return 128, 256, 128, 16, 8, 3  # best of 10 configs on the H100 (bench/results/h100-triton.md)
    return 128, 256, 64, 8, 8, 3


def fp8_gemm(x: torch.Tensor, w_fp8: torch.Tensor, w_scale, *, bias=None, input_scale=None,
             out: torch.Tensor | None = None, config: tuple | None = None,
             out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """x [..., K] @ (w_fp8 [N, K] * w_scale)^T -> [..., N] in x.dtype (or `out`, shaped like it).

    x may already be float8_e4m3fn (activations quantized by the caller): then input_scale is its
    scale and is required, and the output dtype is out_dtype (default bf16). On Hopper, W8A8 at
    prefill sizes runs the persistent TMA kernel (an 8-entry config picks it explicitly)."""
    if w_fp8.dim() != 2 or w_fp8.dtype != torch.float8_e4m3fn:
        raise ValueError(f"fp8_gemm: weight must be float8_e4m3fn [N, K], got {w_fp8.dtype} {tuple(w_fp8.shape)}")
    n, k = w_fp8.shape
    if x.shape[-1] != k:
        raise ValueError(f"fp8_gemm: x has K={x.shape[-1]}, weight {tuple(w_fp8.shape)}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)
    m = x2.shape[0]
    ws = torch.as_tensor(w_scale, dtype=torch.float32, device=x.device)
    per_channel = ws.numel() != 1
    if per_channel and ws.numel() != n:
        raise ValueError(f"fp8_gemm: w_scale has {ws.numel()} values for N={n} rows")
    ws = ws.reshape(-1).contiguous()
    w8a8 = input_scale is not None
    prequantized = x.dtype == torch.float8_e4m3fn
    if prequantized and not w8a8:
        raise ValueError("fp8_gemm: float8 activations need their input_scale")
    c_dtype = (out_dtype or torch.bfloat16) if prequantized else x.dtype
    if w8a8:
        a_s = torch.as_tensor(input_scale, dtype=torch.float32, device=x.device).reshape(1)
        a = x2 if prequantized else fp8_quant(x2, a_s)
    else:
        a_s = ws
        a = x2 if x2.stride(-1) == 1 else x2.contiguous()
    w = w_fp8 if w_fp8.stride(-1) == 1 else w_fp8.contiguous()
    c = check_out(None if out is None else out.view(m, n), (m, n), c_dtype, x.device, "fp8_gemm")
    if w8a8 and m and (len(config) == 8 if config else tma_usable(a, w)):
        fp8_gemm_tma(a if a.stride(-1) == 1 else a.contiguous(), w, ws, a_s, bias, c, config)
        return out if out is not None else c.reshape(*lead, n)
    bm, bn, bk, gm, warps, stages = config or _config(m, n, k, x.device, w8a8)
    native = x.device.type != "cpu"
    if not native:
        w = w.view(torch.uint8)
        a = a.view(torch.uint8) if w8a8 else a
    grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn),)
    buf = store_buffer(c)
    if m:
        fp8_gemm_kernel.on(x.device)[grid](
            a, w, ws, a_s, bias if bias is not None else ws, buf,
            m, n, k, a.stride(0), w.stride(0), buf.stride(0),
            W8A8=w8a8, PER_CHANNEL=per_channel, HAS_BIAS=bias is not None, NATIVE=native,
            DOT=dot_precision(x), BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=gm, ITERS=triton.cdiv(k, bk),
            num_warps=warps, num_stages=stages,
        )
    round_into(c, buf)
    return out if out is not None else c.reshape(*lead, n)
