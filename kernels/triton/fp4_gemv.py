"""Small-M (decode) FP4 GEMM: C[m, n] = sum_k A[m, k] * W[n, k] (* g[n]) (+ bias[n]), M <= 16.

A GEMV at M <= 16 is a stream over the packed weights (N*K/2 bytes + scales), so the kernel is
shaped for bandwidth, not for reuse: many programs over N (BLOCK_N rows each), split-K (fp32
atomics) when N alone gives too few programs, weight bytes loaded along K in wide loads and
prefetched one step ahead in registers. Two ways to multiply:
- M = 1 (FMA=1, GPU, bf16): CUDA-core FMAs in the weights' own [BLOCK_N, groups, bytes] layout,
  x read as int32 bf16 pairs (one load per byte of weights, bf16 -> fp32 by shift/mask), one
  reduction at the end: no operand layout conversions at all.
- M = 2..16: tensor cores, swap-AB (W[BLOCK_N, k] @ A^T[k, 16]), so one 16-row activation tile
  covers every M and the decoded weights need no transpose.

Decode for bf16 activations on a GPU is PTX (`decode_bf16_asm`): two weights per 32-bit register,
the e2m1 bits moved into a bf16's exponent/mantissa field with shifts and masks, the missing
exponent bias and the block scale applied with two bf16x2 FMAs (~2.5 instructions per weight
instead of ~10 for the select chain). The interpreter (CPU) and fp16/fp32 activations use the exact
fp32 decode of _helpers. Both give the same values: e2m1 times a power of two (MXFP4) or an e4m3
value (NVFP4) has at most 6 significant bits, exact in bf16.

Measured on the H100 (bench/results/h100-triton.md): M = 1 ~33-39 us, M = 2..16 ~50-64 us for
N = K = 8192, against a ~12 us copy roofline: still well short, see the results file.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _helpers as h
from ._launch import check_out, dot_in_fp32, kernel

E8M0, E4M3 = 0, 1
GROUP = {E8M0: 32, E4M3: 16}
MAX_M = 16

# PTX: 4 packed bytes ($4) and their 4 bf16 block scales ($5, $6) -> the 4 low-nibble weights
# ($0, $1) and the 4 high-nibble weights ($2, $3), bf16x2 each. prmt puts byte j in the top byte of
# a 16-bit lane; a nibble's sign goes to bit 15 and its (e1 e0 m) bits to 8..6, i.e. a bf16 with
# exponent field e and mantissa m/2: 2^(e-127)(1+m/2) for e >= 1 and the subnormal 2^-127 for code
# 1. Times 2^126 (0x7E80) that is exactly the e2m1 value (0.5 for code 1, 0 for 0); then times the
# block scale. FMA with -0 keeps the sign of zero.


def decode_bf16_asm(byte, scale_bf16):
    """uint8 bytes and bf16 scales (same shape) -> (low-nibble, high-nibble) weights in bf16."""
    return tl.inline_asm_elementwise(
        """
{
.reg .b32 t, u, v, bias, nz, z;
mov.b32 z, 0;
mov.b32 bias, 0x7E807E80;
mov.b32 nz, 0x80008000;
prmt.b32 t, $4, z, 0x1404;
shl.b32 u, t, 4;
shr.b32 v, t, 2;
and.b32 u, u, 0x80008000;
and.b32 v, v, 0x01C001C0;
or.b32 u, u, v;
fma.rn.bf16x2 u, u, bias, nz;
fma.rn.bf16x2 $0, u, $5, nz;
shr.b32 v, t, 6;
and.b32 u, t, 0x80008000;
and.b32 v, v, 0x01C001C0;
or.b32 u, u, v;
fma.rn.bf16x2 u, u, bias, nz;
fma.rn.bf16x2 $2, u, $5, nz;
prmt.b32 t, $4, z, 0x3424;
shl.b32 u, t, 4;
shr.b32 v, t, 2;
and.b32 u, u, 0x80008000;
and.b32 v, v, 0x01C001C0;
or.b32 u, u, v;
fma.rn.bf16x2 u, u, bias, nz;
fma.rn.bf16x2 $1, u, $6, nz;
shr.b32 v, t, 6;
and.b32 u, t, 0x80008000;
and.b32 v, v, 0x01C001C0;
or.b32 u, u, v;
fma.rn.bf16x2 u, u, bias, nz;
fma.rn.bf16x2 $3, u, $6, nz;
}
""", "=r,=r,=r,=r,r,r,r", [byte, scale_bf16],
        dtype=(tl.bfloat16, tl.bfloat16), is_pure=True, pack=4,
    )


def decode_bf16_bits(byte, scale_bf16):
    """The same values by plain arithmetic (the interpreter cannot run PTX)."""
    b = byte.to(tl.int32)
    s = scale_bf16.to(tl.float32)
    return ((h.fp4_to_f32(b & 15) * s).to(tl.bfloat16), (h.fp4_to_f32((b >> 4) & 15) * s).to(tl.bfloat16))


def e8m0_to_bf16(u):
    """e8m0 byte (int32) -> bf16 2^(u-127): bits u << 7; 0 is the subnormal 2^-127, 255 NaN."""
    bits = tl.where(u == 0, 0x40, tl.where(u == 255, 0x7FC0, u << 7))
    return bits.to(tl.int16).to(tl.bfloat16, bitcast=True)


def _fp4_gemv(
    a_ptr, w_ptr, s_ptr, g_ptr, bias_ptr, c_ptr,
    M, N, K, k_per_split,
    stride_am, stride_ak, stride_wn, stride_sn, stride_g, stride_cm,
    SCALE_KIND: tl.constexpr, HAS_G: tl.constexpr, HAS_BIAS: tl.constexpr, ATOMIC: tl.constexpr,
    FAST_BF16: tl.constexpr, FMA: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ITERS: tl.constexpr,
    FP4_TO_F32: tl.constexpr, E8M0_TO_F32: tl.constexpr, E4M3_TO_F32: tl.constexpr,
    E8M0_TO_BF16: tl.constexpr, DECODE_BF16: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    BPS: tl.constexpr = 16 if SCALE_KIND == 0 else 8  # packed bytes per block scale
    NSB: tl.constexpr = BLOCK_K // (2 * BPS)  # block scales per row per step
    BYTES: tl.constexpr = BLOCK_K // 2

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < N
    offs_m = tl.arange(0, BLOCK_M)
    m_ok = offs_m < M
    # weight bytes as [BLOCK_N, NSB, BPS]: one scale per (row, middle index), broadcast over BPS
    offs_g = tl.arange(0, NSB)
    offs_j = tl.arange(0, BPS)
    byte_in_step = offs_g[:, None] * BPS + offs_j[None, :]  # [NSB, BPS]
    w_rows = w_ptr + offs_n.to(tl.int64)[:, None, None] * stride_wn
    s_rows = s_ptr + offs_n.to(tl.int64)[:, None] * stride_sn
    offs_b = tl.arange(0, BYTES)
    half_k = K // 2
    n_scales = K // (2 * BPS)

    acc = tl.full((BLOCK_N, BLOCK_M), 0.0, tl.float32)
    acc3 = tl.full((BLOCK_N, NSB, BPS), 0.0, tl.float32)  # FMA path only
    kb0 = pid_k * (k_per_split // 2)
    # weights and scales are prefetched one step ahead in registers, so each step's DRAM loads are
    # in flight while the previous step decodes and multiplies
    kb = kb0 + byte_in_step  # [NSB, BPS] byte index along K//2
    byte_nx = tl.load(w_rows + kb[None, :, :], mask=n_ok[:, None, None] & (kb < half_k)[None, :, :], other=0)
    si = kb0 // BPS + offs_g
    s_nx = tl.load(s_rows + si[None, :], mask=n_ok[:, None] & (si < n_scales)[None, :], other=0)
    for it in range(ITERS):
        kb_step = kb0 + it * BYTES
        byte = byte_nx
        s_raw = s_nx.to(tl.int32)
        more = it + 1 < ITERS
        kb = kb_step + BYTES + byte_in_step
        byte_nx = tl.load(w_rows + kb[None, :, :], mask=n_ok[:, None, None] & (kb < half_k)[None, :, :] & more, other=0)
        si = (kb_step + BYTES) // BPS + offs_g
        s_nx = tl.load(s_rows + si[None, :], mask=n_ok[:, None] & (si < n_scales)[None, :] & more, other=0)
        if FMA:
            # M = 1 without tensor cores: everything stays in the weights' [BLOCK_N, NSB, BPS]
            # layout (no reshape, no operand shuffles); one FMA per weight, one reduction at the end
            # x arrives as int32 words, each the bf16 pair (x[2j], x[2j+1]) that byte j multiplies:
            # one wide load per pair, and bf16 -> fp32 is a shift or a mask
            kb = kb_step + byte_in_step
            xw = tl.load(a_ptr + kb, mask=kb < half_k, other=0)
            xe = (xw << 16).to(tl.float32, bitcast=True)
            xo = (xw & -65536).to(tl.float32, bitcast=True)
            if SCALE_KIND == 0:
                sc = E8M0_TO_BF16(s_raw)
            else:
                sc = E4M3_TO_F32(s_raw).to(tl.bfloat16)
            lo, hi = DECODE_BF16(byte, tl.broadcast_to(sc[:, :, None], (BLOCK_N, NSB, BPS)))
            acc3 += lo.to(tl.float32) * xe[None, :, :] + hi.to(tl.float32) * xo[None, :, :]
        # activations transposed: [BYTES, BLOCK_M], even and odd columns of A
        kk = kb_step + offs_b
        a_mask = (kk < half_k)[:, None] & m_ok[None, :]
        a_even = a_ptr + offs_m[None, :] * stride_am + (2 * kk)[:, None] * stride_ak
        if FMA:
            pass
        elif FAST_BF16:
            if SCALE_KIND == 0:
                sc = E8M0_TO_BF16(s_raw)
            else:
                sc = E4M3_TO_F32(s_raw).to(tl.bfloat16)
            lo, hi = DECODE_BF16(byte, tl.broadcast_to(sc[:, :, None], (BLOCK_N, NSB, BPS)))
            lo = tl.reshape(lo, (BLOCK_N, BYTES))
            hi = tl.reshape(hi, (BLOCK_N, BYTES))
            xe = tl.load(a_even, mask=a_mask, other=0.0).to(tl.bfloat16)
            xo = tl.load(a_even + stride_ak, mask=a_mask, other=0.0).to(tl.bfloat16)
            acc = tl.dot(lo, xe, acc)
            acc = tl.dot(hi, xo, acc)
        else:
            if SCALE_KIND == 0:
                sc = E8M0_TO_F32(s_raw)
            else:
                sc = E4M3_TO_F32(s_raw)
            b = byte.to(tl.int32)
            lo = tl.reshape(FP4_TO_F32(b & 15) * sc[:, :, None], (BLOCK_N, BYTES))
            hi = tl.reshape(FP4_TO_F32((b >> 4) & 15) * sc[:, :, None], (BLOCK_N, BYTES))
            xe = tl.load(a_even, mask=a_mask, other=0.0).to(tl.float32)
            xo = tl.load(a_even + stride_ak, mask=a_mask, other=0.0).to(tl.float32)
            acc = tl.dot(lo, xe, acc, input_precision="ieee")
            acc = tl.dot(hi, xo, acc, input_precision="ieee")

    if FMA:
        # row 0 of the result: the FMA partials summed (columns 1.. are masked off by m_ok)
        acc = tl.where(offs_m[None, :] == 0, tl.sum(tl.sum(acc3, 2), 1)[:, None], 0.0)
    if HAS_G:
        acc = acc * tl.load(g_ptr + offs_n * stride_g, mask=n_ok, other=0.0)[:, None]
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)
        acc = acc + tl.where(pid_k == 0, 1.0, 0.0) * bias[:, None]
    c_ptrs = c_ptr + offs_m[None, :] * stride_cm + offs_n[:, None]
    c_mask = n_ok[:, None] & m_ok[None, :]
    if ATOMIC:
        tl.atomic_add(c_ptrs, acc, mask=c_mask)
    else:
        tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=c_mask)


fp4_gemv_kernel = kernel(
    _fp4_gemv, FP4_TO_F32=h.fp4_to_f32, E8M0_TO_F32=h.e8m0_to_f32, E4M3_TO_F32=h.e4m3_to_f32, E8M0_TO_BF16=e8m0_to_bf16,
    DECODE_BF16=(decode_bf16_asm, decode_bf16_bits),
)

SMS = 132  # H100; only sizes the split-K heuristic

# Per-shape overrides (scale kind, N, K) -> config, for shapes tuned apart from the heuristic below.
TUNED: dict[tuple[int, int, int], tuple] = {}


def config(m: int, n: int, k: int, scale_kind: int, device: torch.device) -> tuple:
    """(BLOCK_N, BLOCK_K, split_k, num_warps, num_stages[, fma]); fma=1 (M = 1, GPU, bf16 only)
    multiplies on the CUDA cores instead of the tensor cores."""
    if device.type == "cpu":
        return 16, 64, 1, 4, 1
    tuned = TUNED.get((scale_kind, n, k))
    if tuned is not None:
        return tuned
    # measured on the H100 at N = K = 8192 (bench/results/h100-triton.md): M = 1 fastest on the CUDA
    # cores with 16-row programs, M >= 2 on the tensor cores with 64-row programs; split K until
    # every SM has several programs, each split keeping >= 1024 K elements
    fma = int(m == 1)
    bn, bk, want = (32, 256, SMS) if fma else (64, 256, 4 * SMS)
    ctas = triton.cdiv(n, bn)
    split = 1
    while ctas * split < want and k // (split * 2) >= 1024 and split < 4:
        split *= 2
    return (bn, bk, split, 4, 4, 1) if fma else (bn, bk, split, 4, 3, 0)


def fp4_gemv(a: torch.Tensor, w: torch.Tensor, scales: torch.Tensor, scale_kind: int, *, g=None, bias=None,
             out: torch.Tensor | None = None, out_dtype: torch.dtype | None = None,
             cfg: tuple | None = None, fast: bool | None = None) -> torch.Tensor:
    """A [M <= 16, K] x fp4 W [N, K//2] (scales [N, K//G], g [N] fp32, any stride) -> C [M, N].

    fast=False forces the fp32 decode on a GPU (the benchmark's measure of what the PTX decode buys)."""
    m, k = a.shape
    n = w.shape[0]
    w, scales = w.view(torch.uint8), scales.view(torch.uint8)  # e8m0 bytes or e4m3 bits
    if m > MAX_M:
        raise ValueError(f"fp4_gemv: M={m} > {MAX_M}; use fp4_gemm")
    bn, bk, split, warps, stages, *rest = cfg or config(m, n, k, scale_kind, a.device)
    out_dtype = out_dtype or a.dtype
    atomic = split > 1
    if atomic:
        acc = torch.zeros((m, n), dtype=torch.float32, device=a.device)
    else:
        acc = check_out(out, (m, n), out_dtype, a.device, "fp4_gemv")
    k_per_split = triton.cdiv(triton.cdiv(k, split), bk) * bk
    grid = (triton.cdiv(n, bn), triton.cdiv(k, k_per_split))
    fast = (a.device.type != "cpu" and not dot_in_fp32(a)) if fast is None else (fast and a.device.type != "cpu")
    # FMA path: M = 1, compiled (tl.sum is bound to one mode, see _launch), bf16 x with unit stride
    fma = (bool(rest and rest[0]) and m == 1 and fast and a.dtype == torch.bfloat16 and a.stride(1) == 1
           and a.storage_offset() % 2 == 0)
    a_arg = a.view(torch.int32) if fma else a
    fp4_gemv_kernel.on(a.device)[grid](
        a_arg, w, scales, g if g is not None else acc, bias if bias is not None else acc, acc,
        m, n, k, k_per_split,
        a.stride(0), a.stride(1), w.stride(0), scales.stride(0), g.stride(0) if g is not None else 0, acc.stride(0),
        SCALE_KIND=scale_kind, HAS_G=g is not None, HAS_BIAS=bias is not None, ATOMIC=atomic, FAST_BF16=fast, FMA=fma,
        BLOCK_M=MAX_M, BLOCK_N=bn, BLOCK_K=bk, ITERS=k_per_split // bk, num_warps=warps, num_stages=stages,
    )
    if atomic:
        out = check_out(out, (m, n), out_dtype, a.device, "fp4_gemv")
        out.copy_(acc)
        return out
    return acc
