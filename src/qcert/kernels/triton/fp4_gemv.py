"""Small-M (decode) FP4 GEMM: C[m, n] = sum_k A[m, k] * W[n, k] (* g[n]) (+ bias[n]), M <= 16.

bf16 and fp16 activations on an NVIDIA GPU go to the tensor-core kernel in fp4_gemv_mma.py. The
kernels here serve the rest: fp32 activations (and bf16 and fp16 on ROCm), and the interpreter (CPU CI),
where they check the same launch logic. Both are shaped for few instructions per weight and loads without masks:
- weights are read as int32 words (8 e2m1 codes each) in [BLOCK_N, groups, words-per-group]
  tiles, so one scale serves a whole 16-byte (MXFP4) or 8-byte (NVFP4) vector load;
- rows past N re-read row N-1 (stores are masked), so only a ragged K needs masked loads;
- M = 1 (`_fp4_gemv1`): CUDA cores, one warp per program, a lane owns whole scale groups and gets
  A's columns for them in its own layout; compiled, PTX (`_DOT8`) decodes a word and sums its 8
  products in fp32; the block scale multiplies each group's sum;
- M = 2..16 (`_fp4_gemv`): swap-AB, W[BLOCK_N, k] @ A^T[k, 16], so one 16-row activation tile
  covers every M (rows past M re-read row M-1 and are never stored); the dot takes the activations
  as `_launch.dot_precision` says (fp32 on NVIDIA: two tf32 dots, _helpers.act_dot). A word decodes
  to its 8 values low nibbles first (k = 0, 2, 4, 6, 1, 3, 5, 7); A's columns are permuted to match
  in registers (a dot product does not care how K is ordered, only that both sides agree).

All give the reference's values: e2m1 times a power of two (MXFP4) or an e4m3 value (NVFP4) has at
most 6 significant bits, exact in bf16, tf32 and fp32, and products and sums are fp32 (the two tf32 dots
of fp32 activations drop less than 2^-20 of each product).

Figures and the configurations tried: bench/results/h100-triton.md.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _helpers as h
from . import fp4_gemv_mma
from ._launch import check_out, device_facts, dot_precision, kernel, round_into, split_buffers, store_buffer

E8M0, E4M3 = 0, 1
GROUP = {E8M0: 32, E4M3: 16}
MAX_M = 16

def _ptx_pairs(word: str, lo: str, hi: str, sel: str) -> str:
    """PTX: two bytes of `word` (prmt selector `sel`) -> bf16x2 registers `lo` (their low nibbles)
    and `hi` (their high nibbles), each exactly the e2m1 value: prmt puts the bytes in the top byte
    of the two 16-bit lanes, shifts bring a nibble's sign to bit 15 and its (e1 e0 m) to 8..6
    (h.ptx_e2m1_bf16x2), times 2^126 (`bias`); -0 (`nz`) as the addend keeps the sign of zero."""
    out = [f"prmt.b32 t, {word}, 0, {sel};\n"]
    for dst, shifts, sign in ((lo, "shl.b32 u, t, 4;\nshr.b32 v, t, 2;\n", "u"), (hi, "shr.b32 v, t, 6;\n", "t")):
        out += [shifts, h.ptx_e2m1_bf16x2("u", sign, "v"), f"fma.rn.bf16x2 {dst}, u, bias, nz;\n"]
    return "".join(out)


# PTX: M = 1 on the CUDA cores. One word ($1) and the 8 fp32 activations of its columns ($2..$9, in
# column order) -> sum of the 8 products ($0). The block scale is applied once per group, in fp32,
# by the caller; bf16 -> fp32 is a shift or a mask; the products (<= 10 significant bits) and their
# sum are fp32. r0 = (k0, k2), r1 = (k1, k3), r2 = (k4, k6), r3 = (k5, k7) as bf16 lanes.
_DOT8_TERMS = [("r0", 2, 4), ("r1", 3, 5), ("r2", 6, 8), ("r3", 7, 9)]  # register, x of low lane, of high
_DOT8 = tl.constexpr(
    "{\n.reg .b32 t, u, v, bias, nz, r0, r1, r2, r3;\n.reg .f32 f;\nmov.b32 bias, 0x7E807E80;\nmov.b32 nz, 0x80008000;\n"
    + _ptx_pairs("$1", "r0", "r1", "0x1404") + _ptx_pairs("$1", "r2", "r3", "0x3424")
    + "".join(f"shl.b32 u, {r}, 16;\n" + (f"mul.rn.f32 f, u, ${xl};\n" if r == "r0" else f"fma.rn.f32 f, u, ${xl}, f;\n")
              + f"and.b32 u, {r}, 0xFFFF0000;\nfma.rn.f32 f, u, ${xh}, f;\n" for r, xl, xh in _DOT8_TERMS)
    + "mov.b32 $0, f;\n}\n"
)


def dot8_asm(word, x0, x1, x2, x3, x4, x5, x6, x7, FP4_TO_F32: tl.constexpr):
    """int32 words, fp32 activations of columns 0..7 -> fp32 sum of products (codes unscaled)."""
    return tl.inline_asm_elementwise(_DOT8, "=f,r,f,f,f,f,f,f,f,f", [word, x0, x1, x2, x3, x4, x5, x6, x7],
                                     dtype=tl.float32, is_pure=True, pack=1)


def dot8_f32(word, x0, x1, x2, x3, x4, x5, x6, x7, FP4_TO_F32: tl.constexpr):
    """dot8_asm by plain arithmetic (interpreter): decode8_f32 unscaled, in its k order."""
    o = decode8_f32(word, 1.0, FP4_TO_F32)  # k = 0, 2, 4, 6, 1, 3, 5, 7
    return o[0] * x0 + o[1] * x2 + o[2] * x4 + o[3] * x6 + o[4] * x1 + o[5] * x3 + o[6] * x5 + o[7] * x7


def decode8_f32(word, scale_f32, FP4_TO_F32: tl.constexpr):
    """The same 8 values in fp32 by plain arithmetic (the interpreter cannot run PTX)."""
    return (FP4_TO_F32(word & 15) * scale_f32, FP4_TO_F32((word >> 8) & 15) * scale_f32,
            FP4_TO_F32((word >> 16) & 15) * scale_f32, FP4_TO_F32((word >> 24) & 15) * scale_f32,
            FP4_TO_F32((word >> 4) & 15) * scale_f32, FP4_TO_F32((word >> 12) & 15) * scale_f32,
            FP4_TO_F32((word >> 20) & 15) * scale_f32, FP4_TO_F32((word >> 28) & 15) * scale_f32)


def join8(o0, o1, o2, o3, o4, o5, o6, o7):
    """8 same-shaped [a, b, c] tensors -> [a, b, c, 2, 2, 2] whose flattened last dims are o0..o7
    (tl.join puts its two inputs at a new fastest index, so each level swaps it outwards)."""
    a = tl.permute(tl.join(tl.join(o0, o1), tl.join(o2, o3)), (0, 1, 2, 4, 3))
    b = tl.permute(tl.join(tl.join(o4, o5), tl.join(o6, o7)), (0, 1, 2, 4, 3))
    return tl.permute(tl.join(a, b), (0, 1, 2, 5, 3, 4))


def block_scale_f32(s_raw, SCALE_KIND: tl.constexpr, E8M0_TO_F32: tl.constexpr, E4M3_TO_F32: tl.constexpr):
    """Block-scale bytes (int32) -> fp32, exactly: e8m0, or e4m3 by the kernel's E4M3_TO_F32
    (h.E4M3_SCALE: the hardware's conversion compiled, bit arithmetic interpreted)."""
    if SCALE_KIND == 0:
        sc = E8M0_TO_F32(s_raw)
    else:
        sc = E4M3_TO_F32(s_raw)
    return sc


def _fp4_gemv(
    a_ptr, w_ptr, s_ptr, g_ptr, bias_ptr, c_ptr, part_ptr, count_ptr,
    M, N, K, words_per_split,
    stride_am, stride_ak, stride_wn, stride_sn, stride_g, stride_cm,
    SCALE_KIND: tl.constexpr, HAS_G: tl.constexpr, HAS_BIAS: tl.constexpr, SPLITS: tl.constexpr,
    EVEN_K: tl.constexpr, DOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ITERS: tl.constexpr,
    E8M0_TO_F32: tl.constexpr, E4M3_TO_F32: tl.constexpr, BLOCK_SCALE: tl.constexpr, FP4_TO_F32: tl.constexpr,
    DECODE8_F32: tl.constexpr, JOIN8: tl.constexpr, SPLIT_SUM: tl.constexpr, SPLIT_LAST: tl.constexpr,
    ACT_DOT: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    WPG: tl.constexpr = 4 if SCALE_KIND == 0 else 2  # int32 words per block scale (32 or 16 codes)
    G: tl.constexpr = BLOCK_K // (8 * WPG)  # block scales per row per step
    WORDS: tl.constexpr = BLOCK_K // 8

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = tl.minimum(offs_n, N - 1).to(tl.int64)  # past N: re-read the last row, never stored
    offs_m = tl.arange(0, BLOCK_M)
    offs_k = tl.arange(0, BLOCK_K)
    word_in_step = tl.arange(0, G)[:, None] * WPG + tl.arange(0, WPG)[None, :]  # [G, WPG]
    w0 = pid_k * words_per_split  # passed in words so triton sees 16-byte alignment
    k0 = w0 * 8
    w_ptrs = w_ptr + rows[:, None, None] * stride_wn + (w0 + word_in_step)[None, :, :]
    s_ptrs = s_ptr + rows[:, None] * stride_sn + (w0 // WPG + tl.arange(0, G))[None, :]
    a_ptrs = a_ptr + tl.minimum(offs_m, M - 1)[:, None] * stride_am + (k0 + offs_k)[None, :] * stride_ak

    acc = tl.full((BLOCK_N, BLOCK_M), 0.0, tl.float32)
    for it in range(ITERS):
        if EVEN_K:
            word = tl.load(w_ptrs)
            s_raw = tl.load(s_ptrs).to(tl.int32)
            x = tl.load(a_ptrs)
        else:
            # past K: x is 0 and the scale byte 0 (finite), so the tail adds exactly nothing
            kk = k0 + it * BLOCK_K
            word = tl.load(w_ptrs, mask=(kk // 8 + word_in_step < K // 8)[None, :, :], other=0)
            s_raw = tl.load(s_ptrs, mask=(kk // (8 * WPG) + tl.arange(0, G) < K // (8 * WPG))[None, :], other=0)
            s_raw = s_raw.to(tl.int32)
            x = tl.load(a_ptrs, mask=(kk + offs_k < K)[None, :], other=0.0)
        # A's columns in the decode's order: per 8 columns 0, 2, 4, 6, 1, 3, 5, 7 (a register shuffle)
        x = tl.reshape(tl.permute(tl.reshape(x, (BLOCK_M, WORDS, 4, 2)), (0, 1, 3, 2)), (BLOCK_M, BLOCK_K))
        sc = tl.broadcast_to(BLOCK_SCALE(s_raw, SCALE_KIND, E8M0_TO_F32, E4M3_TO_F32)[:, :, None],
                             (BLOCK_N, G, WPG))
        o0, o1, o2, o3, o4, o5, o6, o7 = DECODE8_F32(word, sc, FP4_TO_F32)
        w = tl.reshape(JOIN8(o0, o1, o2, o3, o4, o5, o6, o7), (BLOCK_N, BLOCK_K))
        acc = ACT_DOT(tl.trans(x), w, acc, DOT, False)
        w_ptrs += WORDS
        s_ptrs += G
        a_ptrs += BLOCK_K * stride_ak

    c_mask = (offs_n < N)[:, None] & (offs_m < M)[None, :]
    if SPLITS > 1:  # the row block's last program adds the partials [SPLITS, M, N] and stores C
        acc, c_mask = SPLIT_SUM(acc, part_ptr + offs_m[None, :] * N + offs_n[:, None], M * N, c_mask, pid_k,
                                count_ptr + pid_n, SPLITS, SPLIT_LAST)
    if HAS_G:
        acc = acc * tl.load(g_ptr + rows * stride_g)[:, None]
    if HAS_BIAS:
        acc = acc + tl.load(bias_ptr + rows).to(tl.float32)[:, None]
    tl.store(c_ptr + offs_m[None, :] * stride_cm + offs_n[:, None], acc.to(c_ptr.dtype.element_ty), mask=c_mask)


fp4_gemv_kernel = kernel(
    _fp4_gemv, E8M0_TO_F32=h.e8m0_to_f32, E4M3_TO_F32=h.E4M3_SCALE, BLOCK_SCALE=block_scale_f32,
    FP4_TO_F32=h.fp4_to_f32, DECODE8_F32=decode8_f32, JOIN8=join8, SPLIT_SUM=h.split_sum, SPLIT_LAST=h.split_last,
    ACT_DOT=h.act_dot,
)


def _fp4_gemv1(
    a_ptr, w_ptr, s_ptr, g_ptr, bias_ptr, c_ptr, part_ptr, count_ptr,
    N, K, words_per_split,
    stride_ak, stride_wn, stride_sn, stride_g,
    SCALE_KIND: tl.constexpr, HAS_G: tl.constexpr, HAS_BIAS: tl.constexpr, SPLITS: tl.constexpr,
    EVEN_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ITERS: tl.constexpr,
    E8M0_TO_F32: tl.constexpr, E4M3_TO_F32: tl.constexpr, BLOCK_SCALE: tl.constexpr, FP4_TO_F32: tl.constexpr,
    DOT8: tl.constexpr, LASTSUM: tl.constexpr, SPLIT_SUM: tl.constexpr, SPLIT_LAST: tl.constexpr,
):
    """M = 1 on the CUDA cores. A lane owns whole scale groups: their words arrive in one 16-byte
    (MXFP4) or 8-byte (NVFP4) load, their scale byte in one more, and A's columns for word slot j of
    every group as a [G, 8] load; with num_warps * 32 == G those share the lane's layout (no
    shuffles). Products and sums are fp32; the block scale multiplies each group's sum."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    WPG: tl.constexpr = 4 if SCALE_KIND == 0 else 2  # int32 words per block scale
    G: tl.constexpr = BLOCK_K // (8 * WPG)  # groups per row per step
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = tl.minimum(offs_n, N - 1).to(tl.int64)  # past N: re-read the last row, never stored
    w0 = pid_k * words_per_split
    offs_g = tl.arange(0, G)
    word_in_step = offs_g[:, None] * WPG + tl.arange(0, WPG)[None, :]  # [G, WPG]
    w_ptrs = w_ptr + rows[:, None, None] * stride_wn + (w0 + word_in_step)[None, :, :]
    # max_contiguous: one scale byte per load, so scales land in the groups' layout (no shuffle)
    s_ptrs = s_ptr + rows[:, None] * stride_sn + tl.max_contiguous(w0 // WPG + offs_g, [1])[None, :]
    x_cols = offs_g[:, None] * (8 * WPG) + tl.arange(0, 8)[None, :]  # [G, 8]: word slot 0 of each group
    shape: tl.constexpr = (BLOCK_N, G)
    acc = tl.full(shape, 0.0, tl.float32)
    for it in range(ITERS):
        k_step = w0 * 8 + it * BLOCK_K
        if EVEN_K:
            word = tl.load(w_ptrs)
            s_raw = tl.load(s_ptrs).to(tl.int32)
        else:  # past K: A is 0 and the scale byte 0 (finite), so the tail adds exactly nothing
            word = tl.load(w_ptrs, mask=(k_step // 8 + word_in_step < K // 8)[None, :, :], other=0)
            s_raw = tl.load(s_ptrs, mask=(k_step // (8 * WPG) + offs_g < K // (8 * WPG))[None, :], other=0)
            s_raw = s_raw.to(tl.int32)
        # the group's words as separate [BN, G] tensors (register renames)
        if WPG == 4:
            wa, wb = tl.split(tl.reshape(word, (BLOCK_N, G, 2, 2)))
            wj0, wj2 = tl.split(wa)
            wj1, wj3 = tl.split(wb)
        else:
            wj0, wj1 = tl.split(word)
            wj2 = wj0
            wj3 = wj1
        p = tl.full(shape, 0.0, tl.float32)
        for j in tl.static_range(WPG):
            cols = k_step + j * 8 + x_cols
            if EVEN_K:
                x8 = tl.load(a_ptr + cols * stride_ak).to(tl.float32)
            else:
                x8 = tl.load(a_ptr + cols * stride_ak, mask=cols < K, other=0.0).to(tl.float32)
            xe, xo = tl.split(tl.reshape(x8, (G, 4, 2)))
            x04, x26 = tl.split(tl.reshape(xe, (G, 2, 2)))
            x15, x37 = tl.split(tl.reshape(xo, (G, 2, 2)))
            x0, x4 = tl.split(x04)
            x2, x6 = tl.split(x26)
            x1, x5 = tl.split(x15)
            x3, x7 = tl.split(x37)
            wj = wj0 if j == 0 else (wj1 if j == 1 else (wj2 if j == 2 else wj3))
            p += DOT8(wj, tl.broadcast_to(x0[None, :], shape), tl.broadcast_to(x1[None, :], shape),
                      tl.broadcast_to(x2[None, :], shape), tl.broadcast_to(x3[None, :], shape),
                      tl.broadcast_to(x4[None, :], shape), tl.broadcast_to(x5[None, :], shape),
                      tl.broadcast_to(x6[None, :], shape), tl.broadcast_to(x7[None, :], shape), FP4_TO_F32)
        acc += p * BLOCK_SCALE(s_raw, SCALE_KIND, E8M0_TO_F32, E4M3_TO_F32)
        w_ptrs += BLOCK_K // 8
        s_ptrs += G

    out = LASTSUM(acc)
    c_mask = offs_n < N
    if SPLITS > 1:  # the row block's last program adds the partials [SPLITS, N] and stores C
        out, c_mask = SPLIT_SUM(out, part_ptr + offs_n, N, c_mask, pid_k, count_ptr + pid_n, SPLITS, SPLIT_LAST)
    if HAS_G:
        out = out * tl.load(g_ptr + rows * stride_g)
    if HAS_BIAS:
        out = out + tl.load(bias_ptr + rows).to(tl.float32)
    tl.store(c_ptr + offs_n, out.to(c_ptr.dtype.element_ty), mask=c_mask)


fp4_gemv1_kernel = kernel(
    _fp4_gemv1, E8M0_TO_F32=h.e8m0_to_f32, E4M3_TO_F32=h.E4M3_SCALE, BLOCK_SCALE=block_scale_f32,
    FP4_TO_F32=h.fp4_to_f32,
    DOT8=(dot8_asm, dot8_f32), LASTSUM=(h.lastsum, h.lastsum_interpreted), SPLIT_SUM=h.split_sum,
    SPLIT_LAST=h.split_last,
)

def config(m: int, n: int, k: int, scale_kind: int, device: torch.device, dot: str = "ieee") -> tuple:
    """(BLOCK_N, BLOCK_K, split_k, num_warps, num_stages); dot: the M = 2..16 kernel's (_launch.dot_precision)."""
    if device.type == "cpu":  # interpreted: small blocks, K split in two where it has two steps (CI runs the split)
        return 16, 64, 2, 4, 1
    # measured on the H100 at N = K = 8192 (bench/results/h100-triton.md). M = 1 (CUDA cores): one
    # warp per program and >= 32 groups per step, so a thread's words and their columns coincide;
    # 4 rows per program, so there are many programs. M >= 2 (fp32 activations, bf16 and fp16 on ROCm):
    # 32-row tiles split 4 ways along K for the ieee dot; for fp32's two tf32 dots 64-row ones (a
    # warpgroup MMA), half as many programs per SM for the same rows: 70-73 / 88-90 us (MXFP4 / NVFP4)
    # at M = 4..16 against 136-149 with 32 rows and 605-631 for the ieee dot (H100, 2026-12-07 22:36).
    # Split K (each split's partials, added by the row block's last program) until the SMs have
    # several programs each.
    if m == 1:
        bn, bk, warps, stages, per_sm = 4, 1024, 1, 1, 8
    elif dot == "tf32x2":
        bn, bk, warps, stages, per_sm = 64, 128, 4, 3, 2
    else:
        bn, bk, warps, stages, per_sm = 32, 128, 4, 3, 4
    want = per_sm * device_facts(device)[1]
    ctas = triton.cdiv(n, bn)
    split = 1
    while ctas * split < want and k // (split * 2) >= max(bk, 1024):
        split *= 2
    return bn, bk, split, warps, stages


def _block_k(k: int, bk: int, group: int, dot: str = "ieee") -> int:
    """BLOCK_K for this K: at least one scale group; bk halved while it exceeds K, or down to the
    largest power of two that divides K if that stays >= bk / 4 (no masked tail step). A tensor-core
    dot (not "ieee") keeps 64 or more, a config's smaller bk too: 16-row tiles with K steps of 16
    (NVFP4, K = 176) gave wrong sums with tf32 dots on the H100 (mma.sync, triton 3.6), steps of 64
    right."""
    if dot != "ieee":
        group = max(group, 64)
    bk = max(bk, group)
    while bk > group and k < bk:
        bk //= 2
    exact = bk
    while exact > group and k % exact:
        exact //= 2
    return exact if k % exact == 0 and exact * 4 >= bk else max(bk, group)


def fp4_gemv(a: torch.Tensor, w: torch.Tensor, scales: torch.Tensor, scale_kind: int, *, g=None, bias=None,
             out: torch.Tensor | None = None, out_dtype: torch.dtype | None = None,
             cfg: tuple | None = None, mma: bool | None = None) -> torch.Tensor:
    """A [M <= 16, K] x fp4 W [N, K//2] (scales [N, K//G], g [N] fp32, any stride) -> C [M, N].

    mma: the tensor-core kernel (fp4_gemv_mma; default: where it runs, bf16 or fp16 activations on an
    NVIDIA GPU), cfg then (rows, k_warps, chunks, split_k); mma=False takes the kernels here, cfg
    (BLOCK_N, BLOCK_K, split_k, num_warps, num_stages)."""
    m, k = a.shape
    n = w.shape[0]
    if m > MAX_M:
        raise ValueError(f"fp4_gemv: M={m} > {MAX_M}; use fp4_gemm")
    if k % 8:
        raise ValueError(f"fp4_gemv: K={k} is not a multiple of 8 (whole int32 words of codes)")
    words = fp4_gemv_mma.as_words(w)  # 8 codes per word; rows stay 4-byte aligned (K % 8 == 0)
    scales = scales.view(torch.uint8)  # e8m0 bytes or e4m3 bits
    out_dtype = out_dtype or a.dtype
    use_mma = fp4_gemv_mma.usable(a) if mma is None else mma
    if cfg is not None and len(cfg) != (4 if use_mma else 5):
        takes = "tensor-core kernel takes (rows, k_warps, chunks, split_k)" if use_mma else \
            "CUDA-core/fp32 kernels take (BLOCK_N, BLOCK_K, split_k, num_warps, num_stages)"
        raise ValueError(f"fp4_gemv: cfg={cfg} does not fit: the {takes}")
    if use_mma:
        return fp4_gemv_mma.fp4_gemv_mma(a, words, scales, scale_kind, g, bias, out, out_dtype, cfg)
    dot = dot_precision(a)
    bn, bk, split, warps, stages = cfg or config(m, n, k, scale_kind, a.device, dot)
    # M = 1: whole groups per lane, a ragged K masks its last step
    grp = GROUP[scale_kind]
    bk = max(grp, min(bk, triton.next_power_of_2(k))) if m == 1 else _block_k(k, bk, grp, dot)
    c = check_out(out, (m, n), out_dtype, a.device, "fp4_gemv")
    buf = store_buffer(c)
    k_per_split = triton.cdiv(triton.cdiv(k, split), bk) * bk
    grid = (triton.cdiv(n, bn), triton.cdiv(k, k_per_split))
    part, counts = split_buffers(grid[1], (m, n), grid[0], a.device, buf)
    common = dict(SCALE_KIND=scale_kind, HAS_G=g is not None, HAS_BIAS=bias is not None, SPLITS=grid[1],
                  EVEN_K=k_per_split * grid[1] == k, BLOCK_N=bn, ITERS=k_per_split // bk, num_warps=warps,
                  num_stages=stages)
    g_arg, bias_arg = (g if g is not None else buf), (bias if bias is not None else buf)
    g_stride = g.stride(0) if g is not None else 0
    if m == 1:
        fp4_gemv1_kernel.on(a.device)[grid](
            a, words, scales, g_arg, bias_arg, buf, part, counts, n, k, k_per_split // 8,
            a.stride(1), words.stride(0), scales.stride(0), g_stride,
            BLOCK_K=bk, **common,
        )
    else:
        fp4_gemv_kernel.on(a.device)[grid](
            a, words, scales, g_arg, bias_arg, buf, part, counts, m, n, k, k_per_split // 8,
            a.stride(0), a.stride(1), words.stride(0), scales.stride(0), g_stride, buf.stride(0),
            DOT=dot, BLOCK_M=MAX_M, BLOCK_K=bk, **common,
        )
    return round_into(c, buf)
