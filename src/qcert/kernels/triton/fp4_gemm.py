"""FP4 (MXFP4 / NVFP4) weight GEMM with the decode in the kernel, fp32 accumulation.

C[m, n] = sum_k A[row(m), k] * W[e(m), n, k] (* g[e, n]) (+ bias[n])

W is packed e2m1 [E, N, K//2] (element 2j in the low nibble) with block scales [E, N, K//G]:
G = 32 e8m0 bytes (MXFP4) or G = 16 float8_e4m3fn (NVFP4); g is NVFP4's fp32 second-level scale.
Linear layers are E = 1 without a row gather; the MoE grouped GEMM gathers A's rows through sorted
token indices and takes each M-block's expert from `block_expert` (see moe.py).

A byte's two codes are decoded side by side and joined back into K order (tl.join + reshape), so A
is read in plain [BLOCK_M, BLOCK_K] tiles and each step is one dot. (Splitting A into its even and
odd columns instead, two dots per step, sent both halves through shared memory: with triton 3.6
for sm_90 at the prefill MoE's 64x128x64 tiles, 35 barriers per step; joined, 5. bench/sass_count.py
--gemm, docs/kernels.md.)
Split-K (grid axis 2): each split stores its fp32 partials and the tile's last program adds them in
split order and stores C (_helpers.split_sum): one kernel, the same bits every run.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..layouts import fp4_tiles_fit
from . import _helpers as h
from . import fp4_gemv, fp4_gemv_mma, fp4_wgmma
from ._launch import check_out, dot_precision, kernel, round_into, row_align, split_buffers, store_buffer

E8M0, E4M3 = 0, 1
GROUP = {E8M0: 32, E4M3: 16}


def _fp4_gemm(
    a_ptr, a_rows_ptr, w_ptr, s_ptr, g_ptr, blk_e_ptr, bias_ptr, c_ptr, part_ptr, count_ptr,
    M, N, K, k_per_split,
    stride_am, stride_ak,
    stride_we, stride_wn,
    stride_se, stride_sn,
    stride_ge,
    stride_cm,
    SCALE_KIND: tl.constexpr, HAS_GATHER: tl.constexpr, HAS_EXPERT: tl.constexpr,
    HAS_G: tl.constexpr, HAS_BIAS: tl.constexpr, SPLITS: tl.constexpr, DOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ITERS: tl.constexpr, TILED: tl.constexpr,
    WORDS: tl.constexpr, FP4_TO_F32: tl.constexpr, E8M0_TO_F32: tl.constexpr, TILE_TO_F32: tl.constexpr,
    E4M3_TO_F32: tl.constexpr, BLOCK_SCALE: tl.constexpr, SPLIT_SUM: tl.constexpr, SPLIT_LAST: tl.constexpr,
    ACT_DOT: tl.constexpr,
    W_ALIGN: tl.constexpr, S_ALIGN: tl.constexpr,
):
    # row strides rewritten as multiples of their alignment: same values, seen by the compiler (_launch.row_align)
    stride_we, stride_wn = stride_we // W_ALIGN * W_ALIGN, stride_wn // W_ALIGN * W_ALIGN
    stride_se, stride_sn = stride_se // S_ALIGN * S_ALIGN, stride_sn // S_ALIGN * S_ALIGN
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    pid_k = tl.program_id(2)
    BYTES: tl.constexpr = BLOCK_K // 2
    # bytes per scale: 16 for e8m0 (32 elements), 8 for e4m3 (16 elements)
    BYTES_PER_SCALE: tl.constexpr = 16 if SCALE_KIND == 0 else 8

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_b = tl.arange(0, BYTES)
    m_ok = offs_m < M
    n_ok = offs_n < N
    if HAS_GATHER:
        rows = tl.load(a_rows_ptr + offs_m, mask=m_ok, other=-1)
        m_ok = m_ok & (rows >= 0)
        rows = tl.where(m_ok, rows, 0).to(tl.int64)
    else:
        rows = offs_m.to(tl.int64)
    if HAS_EXPERT:
        e = tl.load(blk_e_ptr + pid_m).to(tl.int64)
        live = e >= 0  # expert -1: a padding-only block, computes nothing and stores 0
        e = tl.where(live, e, 0)
    else:
        e = 0
        live = True

    a_row_ptr = a_ptr + rows[:, None] * stride_am
    PER: tl.constexpr = 1 if SCALE_KIND == 0 else 2  # scales per 32-column lane chunk
    if TILED:  # layouts.fp4_tiles (W as int32 words): row n's words and scales inside its 16-row tile's blocks
        n64 = offs_n.to(tl.int64)
        w_base = w_ptr + (n64 // 16 * 16 * stride_wn + (n64 % 16) // 8 * 128 + (n64 % 8) * 16)[:, None]
        s_base = s_ptr + (n64 // 16 * 16 * stride_sn + (n64 % 8) * (8 * PER) + (n64 % 16) // 8 * PER)[:, None]
    else:
        w_base = w_ptr + e * stride_we + offs_n.to(tl.int64)[:, None] * stride_wn
        s_base = s_ptr + e * stride_se + offs_n.to(tl.int64)[:, None] * stride_sn
    half_k = K // 2

    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    GROUP: tl.constexpr = 2 * BYTES_PER_SCALE
    NSB: tl.constexpr = BLOCK_K // GROUP  # scales per row per step
    offs_s = tl.arange(0, NSB)
    k_lo = pid_k * k_per_split
    if live:  # a padding-only block skips the K loop (one branch on a scalar)
        for it in range(ITERS):
            k0 = k_lo + it * BLOCK_K
            kk = k0 + tl.arange(0, BLOCK_K)
            a = tl.load(a_row_ptr + kk[None, :] * stride_ak, mask=m_ok[:, None] & (kk < K)[None, :], other=0.0)
            # one scale per GROUP elements, broadcast over its codes through a reshape
            si = k0 // GROUP + offs_s
            s_col = si // (4 * PER) * (64 * PER) + (si % (4 * PER)) // PER * (2 * PER) + si % PER if TILED else si
            s_raw = tl.load(s_base + s_col[None, :], mask=n_ok[:, None] & (si < K // GROUP)[None, :], other=0)
            scale = BLOCK_SCALE(s_raw.to(tl.int32), SCALE_KIND, E8M0_TO_F32, E4M3_TO_F32)
            if TILED or WORDS:  # int32 words of 8 codes under layouts' word map
                kw = k0 // 8 + tl.arange(0, BLOCK_K // 8)
                w_col = kw // 16 * 256 + kw % 16 if TILED else kw
                word = tl.load(w_base + w_col[None, :], mask=n_ok[:, None] & (kw < K // 8)[None, :], other=0)
                w = tl.reshape(tl.reshape(TILE_TO_F32(word), (BLOCK_N, NSB, GROUP)) * scale[:, :, None],
                               (BLOCK_N, BLOCK_K))
            else:  # one byte = two codes
                kb = k0 // 2 + offs_b  # byte index along K//2
                byte = tl.load(w_base + kb[None, :], mask=n_ok[:, None] & (kb < half_k)[None, :], other=0).to(tl.int32)
                lo = tl.reshape(tl.reshape(FP4_TO_F32(byte & 15), (BLOCK_N, NSB, BYTES_PER_SCALE)) * scale[:, :, None],
                                (BLOCK_N, BYTES))
                hi = tl.reshape(tl.reshape(FP4_TO_F32((byte >> 4) & 15), (BLOCK_N, NSB, BYTES_PER_SCALE))
                                * scale[:, :, None], (BLOCK_N, BYTES))
                # low nibble = element 2j, high = 2j + 1: joined along a last axis, K order again
                w = tl.reshape(tl.join(lo, hi), (BLOCK_N, BLOCK_K))
            acc = ACT_DOT(a, tl.trans(w), acc, DOT, True)

    c_mask = (offs_m < M)[:, None] & n_ok[None, :]
    if SPLITS > 1:  # the tile's last program adds the partials [SPLITS, M, N] and stores C
        acc, c_mask = SPLIT_SUM(acc, part_ptr + offs_m.to(tl.int64)[:, None] * N + offs_n[None, :], M * N, c_mask,
                                pid_k, count_ptr + pid_m * tl.num_programs(0) + pid_n, SPLITS, SPLIT_LAST)
    if HAS_G:
        g = tl.load(g_ptr + e * stride_ge + offs_n, mask=n_ok, other=0.0)
        acc = acc * g[None, :]
    if HAS_BIAS:
        acc = acc + tl.load(bias_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(c_ptr + offs_m.to(tl.int64)[:, None] * stride_cm + offs_n[None, :], acc.to(c_ptr.dtype.element_ty),
             mask=c_mask)


fp4_gemm_kernel = kernel(_fp4_gemm, FP4_TO_F32=h.fp4_to_f32, E8M0_TO_F32=h.e8m0_to_f32,
                         TILE_TO_F32=h.tile_words_to_f32, E4M3_TO_F32=h.E4M3_SCALE,
                         BLOCK_SCALE=fp4_gemv.block_scale_f32, SPLIT_SUM=h.split_sum, SPLIT_LAST=h.split_last,
                         ACT_DOT=h.act_dot)


def _config(m: int, n: int, k: int, device: torch.device) -> tuple[int, int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, split_k, num_warps, num_stages)."""
    if device.type == "cpu":  # interpreted: small blocks, K split in two where it has two steps (CI runs the split)
        return 16, 32, 64, 2, 4, 1
    if m <= 16:
        # decode-bound GEMV: many CTAs over N, split K so every SM has several in flight
        n_ctas = triton.cdiv(n, 64)
        split = 1
        while n_ctas * split < 4 * 132 and k // (split * 2) >= 512 and split < 4:
            split *= 2
        return 16, 64, 256, split, 4, 3
    if m <= 64:
        return 64, 64, 128, 1, 4, 3
    return 128, 128, 64, 1, 8, 3


def fp4_gemm(
    a: torch.Tensor,
    w: torch.Tensor,
    scales: torch.Tensor,
    scale_kind: int,
    *,
    m: int | None = None,
    a_rows: torch.Tensor | None = None,
    block_expert: torch.Tensor | None = None,
    block_m: int | None = None,
    g: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
    config: tuple | None = None,
    tiled: bool = False,
    words: bool = False,
    wgmma: bool = False,
) -> torch.Tensor:
    """A [rows, K] (any float dtype, stride along K arbitrary) x fp4 W [E, N, K//2] -> C [m, N].

    Without a_rows, C's row i is A's row i (m = rows). With a_rows ([m] int32, -1 = padding) C's row
    i is A[a_rows[i]] (zeros for padding). block_expert ([cdiv(m, block_m)] int32) picks W[e] per
    M-block; g [E, N] fp32 multiplies columns. C is out_dtype (default a.dtype), or `out`.
    tiled: one weight [N, K//2] and its scales in layouts.fp4_tiles (a linear, not the MoE); M <= 16
    with bf16 or fp16 activations on an NVIDIA GPU runs the tensor-core GEMV, the rest this kernel.
    words: W in layouts.fp4_words (the plain layout, each word's bits under the word map).
    wgmma (with tiled): 8 < M <= 16 with bf16 activations on sm_90 runs the warpgroup-MMA GEMV
    (fp4_wgmma; the triton_wgmma backend asks for it) instead of the mma.sync one.
    """
    if w.dim() == 2:
        w, scales = w.unsqueeze(0), scales.unsqueeze(0)
        g = None if g is None else g.reshape(1, -1)
    e_count, n, half_k = w.shape
    k = 2 * half_k
    grp = GROUP[scale_kind]
    if a.shape[-1] != k:
        raise ValueError(f"fp4_gemm: activations have K={a.shape[-1]}, packed weight {tuple(w.shape)} means K={k}")
    if k % grp or tuple(scales.shape) != (e_count, n, k // grp):
        raise ValueError(f"fp4_gemm: scales {tuple(scales.shape)} do not match weight {tuple(w.shape)} (group {grp})")
    if w.dtype != torch.uint8:
        w = w.view(torch.uint8)
    w = w if w.stride(-1) == 1 else w.contiguous()
    scales = scales if scales.stride(-1) == 1 else scales.contiguous()
    scales = scales.view(torch.uint8)  # e8m0 bytes or e4m3 bits; the kernel decodes both
    rows = a.shape[0] if m is None else m
    out_dtype = out_dtype or a.dtype
    linear = a_rows is None and block_expert is None and e_count == 1
    if tiled:
        if not linear or not fp4_tiles_fit(n, k):
            raise ValueError(f"fp4_gemm: the tile layout takes one weight [N, K//2] (N % 16 == 0, K % 128 == 0) "
                             f"without row gather or experts, got {tuple(w.shape)}")
        w, scales = w.contiguous(), scales.contiguous()  # the general kernel reads W as int32 words below
    mapped = tiled or words  # W's words under layouts' word map
    if linear and 0 < rows <= fp4_gemv.MAX_M and config is None and (not mapped or fp4_gemv_mma.usable(a)):
        # decode-sized linear: the bandwidth-shaped small-M kernels (mapped words: the tensor-core one)
        g1 = None if g is None else g.to(torch.float32).reshape(-1).expand(n)  # a scalar stays stride 0
        if wgmma and tiled and fp4_wgmma.usable(a, rows):  # asked for, 8 < M <= 16 on Hopper
            return fp4_wgmma.fp4_wgmma(a, fp4_gemv_mma.as_words(w[0]), scales[0], scale_kind, g1, bias, out,
                                       out_dtype)
        if mapped:
            return fp4_gemv_mma.fp4_gemv_mma(a, fp4_gemv_mma.as_words(w[0]), scales[0], scale_kind, g1, bias, out,
                                             out_dtype, tiled=tiled, mapped=words)
        return fp4_gemv.fp4_gemv(a, w[0], scales[0], scale_kind, g=g1, bias=bias, out=out, out_dtype=out_dtype)
    bm, bn, bk, split, warps, stages = config or _config(rows, n, k, a.device)
    if block_m is not None:
        bm = block_m
    if block_expert is not None and block_m is None:
        raise ValueError("fp4_gemm: block_expert needs the block_m it was built for")
    c = check_out(out, (rows, n), out_dtype, a.device, "fp4_gemm")
    if rows == 0:
        return c
    buf = store_buffer(c)
    k_per_split = triton.cdiv(triton.cdiv(k, split), bk) * bk
    grid = (triton.cdiv(n, bn), triton.cdiv(rows, bm), triton.cdiv(k, k_per_split))
    part, counts = split_buffers(grid[2], (rows, n), grid[0] * grid[1], a.device, buf)
    if g is not None:
        g = g.to(torch.float32).expand(e_count, n).contiguous()
    dummy = buf
    if mapped:
        w = fp4_gemv_mma.as_words(w)
    fp4_gemm_kernel.on(a.device)[grid](
        a, a_rows if a_rows is not None else dummy, w, scales,
        g if g is not None else dummy, block_expert if block_expert is not None else dummy,
        bias if bias is not None else dummy, buf, part, counts,
        rows, n, k, k_per_split,
        a.stride(0), a.stride(1),
        w.stride(0), w.stride(1),
        scales.stride(0), scales.stride(1),
        g.stride(0) if g is not None else 0,
        buf.stride(0),
        SCALE_KIND=scale_kind, HAS_GATHER=a_rows is not None, HAS_EXPERT=block_expert is not None,
        HAS_G=g is not None, HAS_BIAS=bias is not None, SPLITS=grid[2], DOT=dot_precision(a),
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, ITERS=k_per_split // bk, TILED=tiled, WORDS=words,
        W_ALIGN=row_align(w), S_ALIGN=row_align(scales), num_warps=warps, num_stages=stages,
    )
    return round_into(c, buf)
