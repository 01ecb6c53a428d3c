"""Small-M FP4 GEMM on the tensor cores, one warp-wide `mma.sync` at a time (bf16 or fp16 activations).

C[m, n] = sum_k A[m, k] * W[n, k] (* g[n]) (+ bias[n]) for M <= 16, weights MXFP4 or NVFP4 in the
plain checkpoint layout, on NVIDIA GPUs from sm_80 on (`mma.sync.m16n8k16` bf16 -> fp32). The engine's
bf16 and fp16 decode path; fp4_gemv.py keeps the kernels for fp32 activations and for the interpreter.
fp16 activations go through the same bf16 mmas as two exact bf16 parts (hi + lo, `_F16_PARTS`), each
multiplied into the same accumulators: twice the mmas, the same loads.

Why not tl.dot: the weights are decoded in registers, and triton moves a computed operand into the
mma's register layout through shared memory (a store, a barrier and a load per tile); at M <= 16
that round trip set the pace. Here the decode writes each lane's mma fragment directly. The kernel
is SIMT code in triton's syntax: 1-D tensors of 32 * K_WARPS elements hold one value per thread
(element t in thread t, the layout triton gives a 1-D range; `check_lanes` verifies it on every
compiled variant), and the `mma.sync` runs in inline PTX, which all lanes of a warp reach together.

Swap-AB: the weights are the mma's A operand (16 rows x 16 k), the activations B (16 k x 8 rows of
A), so one n8 tile serves M <= 8 and two serve M <= 16. Lane (g, c) = (lane // 4, lane % 4) of a
warp owns rows g and g + 8 of the warp's 16-row tile and, per 128 columns, the 32 columns of chunk c:
one MXFP4 scale group (two NVFP4 ones), one 16-byte load per row, the 4 lanes of a row reading 64
contiguous bytes. A word (8 codes) decodes to 4 bf16x2 registers holding codes (0, 4), (1, 5),
(2, 6), (3, 7), the pairs one shift-and-mask reaches in both 16-bit halves; the k order inside an
mma does not matter as long as A's column pairs are permuted the same way (prmt). Two mmas consume
a word of each of the lane's two rows. (The word map below decodes to pairs (2j, 2j + 1), A's
columns as loaded: no permute.)

Work split: a program owns ROWS (1 or 2) 16-row tiles, every warp working on all of them so that
A's fragments are loaded once for both (M > 8, where those loads fill L1), and K_WARPS warps that
take turns over K in 128-column steps and add their sums up through shared memory at the end. K
split over programs as well (for shapes with few rows): each program writes its fp32 partial sums
(C's M rows), counts itself in (an acq_rel atomic on its row block's counter: _helpers.split_last),
and the last one resets the counter, adds the partials in split order and writes C. So the GEMV is
one kernel at every split (no zeroing or conversion kernels), and its sums are the same every run.
The weights are loaded evict-first.

Tile layout (tiled=True, layouts.fp4_tiles): the same lanes and steps, but each warp step's weights
are one 1 KB block (the lane's 16 bytes at 16 * lane in each half) and the lane's scale bytes of
both rows one 2- or 4-byte load, so a warp load instruction reads 512 contiguous bytes instead of
64-byte runs of 8 rows. With the plain layout the loads alone take about as long as the kernel
(bench/load_probe.py). Its words are stored under layouts' word map, so a pair of codes decodes in
two integer instructions instead of four (`_tile_decode_ptx`).

Grouped mode (the MoE at decode sizes, moe.py): grid axis 2 walks M-blocks of block_m <= 16
rows; a program takes its block's expert (W, scales and g offset by it; an unused block, expert -1,
reads no weights and writes zeros) and gathers A's rows through the routing's token ids.

Exactness: the decode yields e2m1 * 2^-126 (bits placed in a bf16's subnormal/low exponent range),
times 2^126 and the block scale in bf16 (MXFP4: two multiplies; NVFP4: one, the scale times 2^117,
and the 2^-9 left over is taken back in fp32 at the end). e2m1 times a power of two or an e4m3
value has at most 6 significant bits, so every decoded weight is exact and the tensor cores add
exact products in fp32, as the reference does. fp16 activations' parts give exact products too;
w * hi and w * lo are added by separate mmas, so the sum's order differs from the reference's (the
GPU test holds it to the same fp32 tolerance).

Figures and what was tried: bench/results/h100-triton.md.
"""

from __future__ import annotations

import re

import torch
import triton
import triton.language as tl

from ..layouts import TILE_WORD_DECODE, TILE_WORD_MASK, fp4_tiles_fit
from . import _helpers as h
from ._launch import check_out, device_facts, row_align, split_buffers


def _scale_ptx(out: list[str], bias: bool, scale: str = "$5", halves: bool = False) -> str:
    """The decodes' common tail: registers t0..t3 hold bf16x2 of e2m1 * 2^-126 -> $0..$3, times 2^126
    (`bias`, 0x7E80; NVFP4's scale carries it already) and times the scale (the same bf16 scale
    twice), -0 as the addend keeping the sign of zero. halves: the results as 8 bf16 halves $0..$7
    (low half first; fp4_wgmma's operand) instead. (Skipping the 2^126 multiply where a warp's
    scales allow folding it into them, behind a vote and a branch, saved 6 % of the loop's
    instructions and split it into a block per word; not kept.)"""
    dst = "o" if halves else "$"
    for j in range(4):
        if bias:
            out.append(f"fma.rn.bf16x2 t{j}, t{j}, bias, nz;")
        out.append(f"fma.rn.bf16x2 {dst}{j}, t{j}, {scale}, nz;")
    if halves:
        out += [f"mov.b32 {{${2 * j}, ${2 * j + 1}}}, o{j};" for j in range(4)]
    regs = ".reg .b32 t0, t1, t2, t3, u, v, bias, nz" + (", o0, o1, o2, o3;" if halves else ";")
    head = ["{", regs, "mov.b32 bias, 0x7E807E80;", "mov.b32 nz, 0x80008000;"]
    return "\n".join(head + out + ["}"])


def _decode_ptx(bias: bool) -> str:
    """PTX: word $4 (8 codes, code j in bits 4j..4j+3) and bf16x2 scale $5 -> $0..$3,
    bf16x2 of codes (0, 4), (1, 5), (2, 6), (3, 7). Shifts bring code j's sign to bit 15 of its half
    and its (e1 e0 m) to bits 8..6 (h.ptx_e2m1_bf16x2: e2m1 * 2^-126); then `_scale_ptx`."""
    # shifts bringing the sign to bit 15 and the magnitude to bits 8..6, per register
    out = []
    for j, (sign_shift, mag_shift) in enumerate([(12, 6), (8, 2), (4, -2), (0, -6)]):
        out.append(f"shl.b32 u, $4, {sign_shift};" if sign_shift else "mov.b32 u, $4;")
        out.append(f"shl.b32 v, $4, {mag_shift};" if mag_shift > 0 else f"shr.b32 v, $4, {-mag_shift};")
        out.append(h.ptx_e2m1_bf16x2(f"t{j}", "u", "v").rstrip("\n"))
    return _scale_ptx(out, bias)


def _tile_decode_ptx(bias: bool, halves: bool = False) -> str:
    """The same for a word of the tile layout, whose bits are stored under layouts' word map:
    register j (codes TILE_WORD_PAIRS[j]) is the XOR of TILE_WORD_DECODE[j]'s shifted copies of the
    word, masked (two integer instructions for most registers, where the plain layout's decode takes
    four). halves: 8 bf16 outputs, the word in $8 and the scale in $9 (_scale_ptx)."""
    word, out = ("$8" if halves else "$4"), []
    for j, terms in enumerate(TILE_WORD_DECODE):
        copies = []
        for reg, (amount, rotate) in zip(("u", "v"), terms):
            if amount == 0:
                reg = word
            elif rotate:
                out.append(f"shf.l.wrap.b32 {reg}, {word}, {word}, {amount};")
            else:
                out.append(f"shl.b32 {reg}, {word}, {amount};" if amount > 0 else f"shr.b32 {reg}, {word}, {-amount};")
            copies.append(reg)
        if len(copies) == 2:
            out.append(f"xor.b32 t{j}, {copies[0]}, {copies[1]};")
        out.append(f"and.b32 t{j}, {f't{j}' if len(copies) == 2 else copies[0]}, {TILE_WORD_MASK:#010x};")
    return _scale_ptx(out, bias, "$9" if halves else "$5", halves)


_DECODE_BIAS = tl.constexpr(_decode_ptx(True))
_DECODE_NOBIAS = tl.constexpr(_decode_ptx(False))
_TILE_DECODE_BIAS = tl.constexpr(_tile_decode_ptx(True))
_TILE_DECODE_NOBIAS = tl.constexpr(_tile_decode_ptx(False))


@triton.jit
def _decode(word, scale, BIAS: tl.constexpr, MAPPED: tl.constexpr):
    """int32 words (MAPPED: under layouts' word map), bf16x2 scales (int32) -> 4 int32 tensors of
    bf16x2, codes (0,4), (1,5), (2,6), (3,7) (MAPPED: (0,1), (2,3), (4,5), (6,7))."""
    if MAPPED:
        asm: tl.constexpr = _TILE_DECODE_BIAS if BIAS else _TILE_DECODE_NOBIAS
    else:
        asm: tl.constexpr = _DECODE_BIAS if BIAS else _DECODE_NOBIAS
    return tl.inline_asm_elementwise(asm, "=r,=r,=r,=r,r,r", [word, scale], dtype=(tl.int32,) * 4,
                                     is_pure=True, pack=1)


@triton.jit
def _pairs(x01, x23, x45, x67):
    """bf16x2 activations of columns (0,1), (2,3), (4,5), (6,7) -> (0,4), (1,5), (2,6), (3,7)."""
    return tl.inline_asm_elementwise(
        "prmt.b32 $0, $4, $6, 0x5410;\nprmt.b32 $1, $4, $6, 0x7632;\n"
        "prmt.b32 $2, $5, $7, 0x5410;\nprmt.b32 $3, $5, $7, 0x7632;",
        "=r,=r,=r,=r,r,r,r,r", [x01, x23, x45, x67], dtype=(tl.int32,) * 4, is_pure=True, pack=1)


@triton.jit
def _fragment(x, MAPPED: tl.constexpr):
    """The lane's 8 activation columns as 4 bf16x2 words [32W, 4] -> the registers that pair with
    the decode's: the plain decode's pairs (j, j + 4) need a permute, the word map's (2j, 2j + 1)
    are the columns as loaded."""
    x01, x23, x45, x67 = _split4(x)
    if MAPPED:
        return x01, x23, x45, x67
    else:
        return _pairs(x01, x23, x45, x67)


# fp16 activations: each fp16x2 word -> two bf16x2 words, hi = bf16(x) and lo = bf16(x - hi), with
# hi + lo == x exactly (fp16's 11 significant bits: hi takes 8, the rest has at most 2, and
# fp16's exponents all lie in bf16's normal range), so the bf16 mmas of hi and lo add the exact
# products. hi saturates (.satfinite): an infinite x gives hi = +-max bf16 and lo = +-inf, so the
# products stay infinite instead of inf - inf = NaN.
_F16_PARTS = tl.constexpr(
    "{\n.reg .b16 l, h;\n.reg .b32 f0, f1, g0, g1;\nmov.b32 {l, h}, $2;\ncvt.f32.f16 f0, l;\ncvt.f32.f16 f1, h;\n"
    "cvt.rn.satfinite.bf16x2.f32 $0, f1, f0;\nshl.b32 g0, $0, 16;\nand.b32 g1, $0, 0xFFFF0000;\n"
    "sub.f32 f0, f0, g0;\nsub.f32 f1, f1, g1;\ncvt.rn.bf16x2.f32 $1, f1, f0;\n}")


@triton.jit
def _f16_parts(x):
    """fp16x2 words (int32) -> (hi, lo) bf16x2 words with hi + lo == x (_F16_PARTS)."""
    return tl.inline_asm_elementwise(_F16_PARTS, "=r,=r,r", [x], dtype=(tl.int32, tl.int32), is_pure=True, pack=1)


@triton.jit
def _parts4(x0, x1, x2, x3):
    """A lane's 4 fp16x2 activation tensors -> their hi parts and their lo parts (_f16_parts)."""
    h0, l0 = _f16_parts(x0)
    h1, l1 = _f16_parts(x1)
    h2, l2 = _f16_parts(x2)
    h3, l3 = _f16_parts(x3)
    return h0, h1, h2, h3, l0, l1, l2, l3


@triton.jit
def _mma(a0, a1, a2, a3, b0, b1, c0, c1, c2, c3):
    """One warp-wide m16n8k16 bf16 mma with fp32 accumulators (every lane passes its fragment)."""
    return tl.inline_asm_elementwise(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {$0, $1, $2, $3}, {$4, $5, $6, $7}, {$8, $9}, "
        "{$10, $11, $12, $13};",
        "=f,=f,=f,=f,r,r,r,r,r,r,f,f,f,f", [a0, a1, a2, a3, b0, b1, c0, c1, c2, c3],
        dtype=(tl.float32,) * 4, is_pure=True, pack=1)


@triton.jit
def _split4(x):
    """[32W, 4] -> its 4 columns (register renames)."""
    a, b = tl.split(tl.reshape(x, (x.shape[0], 2, 2)))
    x0, x2 = tl.split(a)
    x1, x3 = tl.split(b)
    return x0, x1, x2, x3


@triton.jit
def _store_tile(c_ptr, d0, d1, d2, d3, row_lo, m0, M, N, stride_cm, scale_lo, scale_hi, bias_lo, bias_hi):
    """d0/d1: (row_lo, m0, m0 + 1); d2/d3: (row_lo + 8, m0, m0 + 1); scaled, biased, stored masked."""
    for j in tl.static_range(4):
        d = d0 if j == 0 else (d1 if j == 1 else (d2 if j == 2 else d3))
        row = row_lo if j < 2 else row_lo + 8
        m = m0 + (j % 2)
        v = d * (scale_lo if j < 2 else scale_hi) + (bias_lo if j < 2 else bias_hi)
        tl.store(c_ptr + m * stride_cm + row, v.to(c_ptr.dtype.element_ty), mask=(m < M) & (row < N))


@triton.jit
def _epilogue(c_ptr, g_ptr, bias_ptr, t0, t1, row_lo, M, N, stride_g, stride_cm, c, SCALE_KIND: tl.constexpr,
              HAS_G: tl.constexpr, HAS_BIAS: tl.constexpr, TWO_TILES: tl.constexpr):
    """One 16-row tile's sums, [32, 4] per n8 tile (lane l: rows row_lo[l] and row_lo[l] + 8) -> C
    (times g and NVFP4's 2^9, plus the bias)."""
    r_lo = tl.minimum(row_lo, N - 1).to(tl.int64)  # clamped for the loads
    r_hi = tl.minimum(row_lo + 8, N - 1).to(tl.int64)
    unfold = 1.0 if SCALE_KIND == 0 else 512.0  # NVFP4's scales carried 2^-9
    scale_lo = tl.full(row_lo.shape, unfold, tl.float32)
    scale_hi = scale_lo
    if HAS_G:
        scale_lo = scale_lo * tl.load(g_ptr + r_lo * stride_g)
        scale_hi = scale_hi * tl.load(g_ptr + r_hi * stride_g)
    bias_lo = tl.full(row_lo.shape, 0.0, tl.float32)
    bias_hi = bias_lo
    if HAS_BIAS:
        bias_lo = tl.load(bias_ptr + r_lo).to(tl.float32)
        bias_hi = tl.load(bias_ptr + r_hi).to(tl.float32)
    d0, d1, d2, d3 = _split4(t0)
    _store_tile(c_ptr, d0, d1, d2, d3, row_lo, c * 2, M, N, stride_cm, scale_lo, scale_hi, bias_lo, bias_hi)
    if TWO_TILES:
        d0, d1, d2, d3 = _split4(t1)
        _store_tile(c_ptr, d0, d1, d2, d3, row_lo, c * 2 + 8, M, N, stride_cm, scale_lo, scale_hi, bias_lo, bias_hi)


@triton.jit
def _join4(x0, x1, x2, x3):
    """_split4's inverse: 4 [32W] tensors -> [32W, 4] (register renames)."""
    return tl.reshape(tl.join(tl.join(x0, x2), tl.join(x1, x3)), (x0.shape[0], 4))


@triton.jit
def _partial(part_ptr, k, acc, row_lo, m0, M, N, LOAD: tl.constexpr):
    """An n8 tile's sums [32, 4] (lane l: rows row_lo[l], + 8 x columns m0[l], + 1, _split4's order)
    into split k's partials [M, N] fp32; LOAD: split k's partials added to them instead (from L2).
    Columns past M are neither written nor read (C never gets them)."""
    j = tl.arange(0, 4)[None, :]
    row = row_lo[:, None] + 8 * (j // 2)
    m = m0[:, None] + j % 2
    ptrs = part_ptr + k * M * N + m * N + row
    mask = (row < N) & (m < M)
    if LOAD:
        return acc + tl.load(ptrs, mask=mask, other=0.0, cache_modifier=".cg")
    tl.store(ptrs, acc, mask=mask)
    return acc


@triton.jit
def _sum_one(acc, K_WARPS: tl.constexpr):
    """[32 * K_WARPS] -> [32], lane l the sum over the warps' lane l (through shared memory)."""
    return tl.sum(tl.reshape(acc, (K_WARPS, 32)), axis=0)


@triton.jit
def _sum_k_warps(x0, x1, x2, x3, K_WARPS: tl.constexpr):
    """An n8 tile's 4 accumulators [32 * K_WARPS] -> [32, 4] (_split4's order), summed over the warps
    one at a time: as one [K_WARPS, 32, 4] block they took 4x the shared memory and the GEMV 2-6 us
    more at N = K = 8192 on the H100 (M = 1..16; bench/results/h100-triton.md, 2026-12-08)."""
    return _join4(_sum_one(x0, K_WARPS), _sum_one(x1, K_WARPS), _sum_one(x2, K_WARPS), _sum_one(x3, K_WARPS))


@triton.jit
def _ld(ptrs, mask, EVEN_K: tl.constexpr, EVICT: tl.constexpr):
    """A load that is masked (0 past K) only when K is ragged."""
    if EVEN_K:
        return tl.load(ptrs, eviction_policy=EVICT)
    else:
        return tl.load(ptrs, mask=mask, other=0, eviction_policy=EVICT)


@triton.jit
def _pick(i: tl.constexpr, x0, x1, x2, x3):
    """x_i for a compile-time i (register renames)."""
    return x0 if i == 0 else (x1 if i == 1 else (x2 if i == 2 else x3))


@triton.jit
def _mma_word(p0, q0, p1, q1, p2, q2, p3, q3, x, acc0, acc1, acc2, acc3, MAPPED: tl.constexpr):
    """A decoded word of each of the lane's two rows (p: row g, q: row g + 8) times one n8 tile's
    activation word x: two k16 mmas into the tile's accumulators."""
    b0, b1, b2, b3 = _fragment(x, MAPPED)
    acc0, acc1, acc2, acc3 = _mma(p0, q0, p1, q1, b0, b1, acc0, acc1, acc2, acc3)
    return _mma(p2, q2, p3, q3, b2, b3, acc0, acc1, acc2, acc3)


@triton.jit
def _tile_chunk(wl_row, wh_row, sl_row, sh_row, K, k_lane, w_col, s_col,
                x0, x1, x2, x3, y0, y1, y2, y3, xl0, xl1, xl2, xl3, yl0, yl1, yl2, yl3,
                acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7,
                SCALE_KIND: tl.constexpr, EVEN_K: tl.constexpr, LANE_K: tl.constexpr, TWO_TILES: tl.constexpr,
                TILED: tl.constexpr, MAPPED: tl.constexpr, A_F16: tl.constexpr):
    """One 16-row tile (pointers of the lane's rows g and g + 8 into the words and the scales; in
    the tile layout the lane's own 16 bytes of each half and its scale bytes), one lane chunk of 32
    columns (k_lane..): load, decode, add the products into the n8 tiles' accumulators (x: the
    first tile's activation words, y: the second's; A_F16: x and y are the fp16 activations' hi
    parts and xl, yl their lo parts, both added into the same accumulators). Past K: codes and
    scale bytes 0 (finite), A's columns 0: the tail adds nothing."""
    word = w_col[:, None] + tl.arange(0, 4)[None, :]
    if LANE_K:  # K ends on a lane chunk: one mask per lane keeps the loads 16 bytes wide
        wmask = (k_lane < K)[:, None]
    else:
        wmask = (k_lane[:, None] + tl.arange(0, 4)[None, :] * 8) < K
    # the weights are read once: first out of L1 and L2
    wl = _ld(wl_row[:, None] + word, wmask, EVEN_K, "evict_first")
    wh = _ld(wh_row[:, None] + word, wmask, EVEN_K, "evict_first")
    if TILED:  # the lane's scales of both rows in one load: MXFP4 (g, g + 8), NVFP4 (g, g, g + 8, g + 8)
        PER: tl.constexpr = 2 if SCALE_KIND == 0 else 4
        j = tl.arange(0, PER)[None, :]
        b = _ld(sl_row[:, None] + s_col[:, None] + j, (k_lane < K)[:, None], EVEN_K, "").to(tl.int32)
        if SCALE_KIND == 0:
            sc_lo0, sc_hi0 = tl.split(_e8m0_bf16(b))
            sc_lo1, sc_hi1 = sc_lo0, sc_hi0
        else:
            sc_lo0, sc_lo1, sc_hi0, sc_hi1 = _split4(_e4m3_bf16_folded(b))
    elif SCALE_KIND == 0:  # one group of 32
        sc_lo0 = _e8m0_bf16(_ld(sl_row + s_col, k_lane < K, EVEN_K, "").to(tl.int32))
        sc_hi0 = _e8m0_bf16(_ld(sh_row + s_col, k_lane < K, EVEN_K, "").to(tl.int32))
        sc_lo1, sc_hi1 = sc_lo0, sc_hi0
    else:  # two groups of 16
        sc_lo0, sc_lo1 = _e4m3_pair(sl_row, s_col, k_lane, K, EVEN_K, LANE_K)
        sc_hi0, sc_hi1 = _e4m3_pair(sh_row, s_col, k_lane, K, EVEN_K, LANE_K)
    wl0, wl1, wl2, wl3 = _split4(wl)
    wh0, wh1, wh2, wh3 = _split4(wh)
    for i in tl.static_range(4):  # the lane's 4 words per row: columns k_lane + 8i .. + 7
        p0, p1, p2, p3 = _decode(_pick(i, wl0, wl1, wl2, wl3), sc_lo0 if i < 2 else sc_lo1, SCALE_KIND == 0, MAPPED)
        q0, q1, q2, q3 = _decode(_pick(i, wh0, wh1, wh2, wh3), sc_hi0 if i < 2 else sc_hi1, SCALE_KIND == 0, MAPPED)
        acc0, acc1, acc2, acc3 = _mma_word(p0, q0, p1, q1, p2, q2, p3, q3, _pick(i, x0, x1, x2, x3),
                                           acc0, acc1, acc2, acc3, MAPPED)
        if A_F16:
            acc0, acc1, acc2, acc3 = _mma_word(p0, q0, p1, q1, p2, q2, p3, q3, _pick(i, xl0, xl1, xl2, xl3),
                                               acc0, acc1, acc2, acc3, MAPPED)
        if TWO_TILES:
            acc4, acc5, acc6, acc7 = _mma_word(p0, q0, p1, q1, p2, q2, p3, q3, _pick(i, y0, y1, y2, y3),
                                               acc4, acc5, acc6, acc7, MAPPED)
            if A_F16:
                acc4, acc5, acc6, acc7 = _mma_word(p0, q0, p1, q1, p2, q2, p3, q3, _pick(i, yl0, yl1, yl2, yl3),
                                                   acc4, acc5, acc6, acc7, MAPPED)
    return acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7


@triton.jit
def _fp4_gemv_mma(
    a_ptr, a_rows_ptr, w_ptr, s_ptr, g_ptr, blk_e_ptr, bias_ptr, c_ptr, part_ptr, count_ptr,
    M, N, K, words_per_split,
    stride_am, stride_we, stride_wn, stride_se, stride_sn, stride_ge, stride_g, stride_cm,
    SCALE_KIND: tl.constexpr, HAS_G: tl.constexpr, HAS_BIAS: tl.constexpr,
    EVEN_K: tl.constexpr, LANE_K: tl.constexpr, TWO_TILES: tl.constexpr, ROWS: tl.constexpr, K_WARPS: tl.constexpr,
    CHUNKS: tl.constexpr, ITERS: tl.constexpr, GATHER: tl.constexpr, GROUPED: tl.constexpr, TILED: tl.constexpr,
    MAPPED: tl.constexpr, A_ALIGN: tl.constexpr, W_ALIGN: tl.constexpr, S_ALIGN: tl.constexpr, SPLIT: tl.constexpr,
    A_F16: tl.constexpr,
):
    # A program: ROWS 16-row tiles x K_WARPS warps taking turns over the split's K range, CHUNKS
    # 128-column steps each (module docstring). K splits vary fastest in the grid, so the programs
    # resident on an SM at once share few K ranges of A. GROUPED (MoE): grid axis 2 walks M-blocks
    # of M rows, each with its expert's weights (blk_e_ptr; -1: an unused block, written as zeros)
    # and, with GATHER, A's rows through a_rows_ptr (-1: padding, any row will do).
    # row strides rewritten as multiples of their alignment: same values, seen by the compiler (_launch.row_align)
    stride_am = stride_am // A_ALIGN * A_ALIGN
    stride_we, stride_wn = stride_we // W_ALIGN * W_ALIGN, stride_wn // W_ALIGN * W_ALIGN
    stride_se, stride_sn = stride_se // S_ALIGN * S_ALIGN, stride_sn // S_ALIGN * S_ALIGN
    pid_k = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_b = tl.program_id(2)
    iters = ITERS
    blk_row = 0  # the first C row of the program's M-block
    if GROUPED:
        e = tl.load(blk_e_ptr + pid_b)
        iters = tl.where(e >= 0, ITERS, 0)  # an unused block reads no weights
        e = tl.maximum(e, 0).to(tl.int64)
        w_ptr += e * stride_we
        s_ptr += e * stride_se
        g_ptr += e * stride_ge
        blk_row = pid_b * M
        c_ptr += blk_row.to(tl.int64) * stride_cm
    t = tl.arange(0, 32 * K_WARPS)  # one element per thread
    g = (t % 32) // 4
    c = t % 4
    first = pid_k * words_per_split // 16 + (t // 32) * CHUNKS  # the warp's first 128-column step
    G_STEP: tl.constexpr = 4 if SCALE_KIND == 0 else 8  # scale bytes per row per 128 columns
    if TILED:
        # (layouts.fp4_tiles) a tile is 16 rows' bytes in a row, a step's block 1 KB (256 words) of
        # weights and 16 * G_STEP bytes of scales; the lane's words sit at 4 * lane in each half
        lane_t = t % 32
        tile0 = (pid_n * (16 * ROWS)).to(tl.int64)
        p0 = w_ptr + tile0 * stride_wn + tl.multiple_of(lane_t * 4, 4)
        p1 = p0 + 128
        q0 = s_ptr + tile0 * stride_sn + tl.multiple_of(lane_t * (G_STEP // 2), G_STEP // 2)
        q1 = q0  # one load reads both rows' scales
        W_STEP: tl.constexpr = 256
        S_STEP: tl.constexpr = 16 * G_STEP
        w_col = first * W_STEP
        s_col = first * S_STEP
    else:
        row0 = pid_n * (16 * ROWS) + g  # the lane's rows: g, g + 8 (and g + 16, g + 24 with ROWS = 2)
        p0 = w_ptr + tl.minimum(row0, N - 1).to(tl.int64) * stride_wn  # past N: re-read the last row, never stored
        p1 = w_ptr + tl.minimum(row0 + 8, N - 1).to(tl.int64) * stride_wn
        q0 = s_ptr + tl.minimum(row0, N - 1).to(tl.int64) * stride_sn
        q1 = s_ptr + tl.minimum(row0 + 8, N - 1).to(tl.int64) * stride_sn
        W_STEP: tl.constexpr = 16
        S_STEP: tl.constexpr = G_STEP
        # a lane chunk: 32 columns, one 16-byte load per row; the 4 lanes of a row read 64 bytes
        # in a row, CHUNKS such runs per step
        w_col = tl.max_contiguous(tl.multiple_of(first * 16 + c * 4, 4), 1)  # in words: 16-byte aligned
        s_col = tl.multiple_of(first * G_STEP + c * (G_STEP // 4), G_STEP // 4)  # the lane's 1 or 2 scale bytes
    if ROWS == 2:  # the second tile, 16 rows on; past N it re-reads the last one and is never stored
        if TILED:
            tile1 = tl.minimum(tile0 + 16, N - 16) - tile0  # rows from the first tile (16 or 0)
            p2, p3 = p0 + tile1 * stride_wn, p1 + tile1 * stride_wn
            q2, q3 = q0 + tile1 * stride_sn, q1 + tile1 * stride_sn
        else:
            p2 = w_ptr + tl.minimum(row0 + 16, N - 1).to(tl.int64) * stride_wn
            p3 = w_ptr + tl.minimum(row0 + 24, N - 1).to(tl.int64) * stride_wn
            q2 = s_ptr + tl.minimum(row0 + 16, N - 1).to(tl.int64) * stride_sn
            q3 = s_ptr + tl.minimum(row0 + 24, N - 1).to(tl.int64) * stride_sn
    a_word = tl.multiple_of(first * 64 + c * 16, 4)[:, None] + tl.arange(0, 4)[None, :]  # A as bf16/fp16 pairs
    a1_ptrs = a_ptr + _a_row(a_rows_ptr, blk_row, g, M, GATHER)[:, None] * stride_am + a_word  # rows g, g + 8
    a2_ptrs = a_ptr + _a_row(a_rows_ptr, blk_row, g + 8, M, GATHER)[:, None] * stride_am + a_word

    zero = tl.full((32 * K_WARPS,), 0.0, tl.float32)
    acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7 = zero, zero, zero, zero, zero, zero, zero, zero
    if ROWS == 2:
        bcc0, bcc1, bcc2, bcc3, bcc4, bcc5, bcc6, bcc7 = zero, zero, zero, zero, zero, zero, zero, zero
    k_first = first * 128 + c * 32  # the lane's first column
    for it in range(iters):
        for j in tl.static_range(CHUNKS):
            step = it * K_WARPS * CHUNKS + j  # 128-column steps past the warp's first
            k_lane = k_first + step * 128
            x0, x1, x2, x3 = _load_a(a1_ptrs + step * 64, k_lane, K, EVEN_K)
            y0, y1, y2, y3 = x0, x1, x2, x3
            if TWO_TILES:
                y0, y1, y2, y3 = _load_a(a2_ptrs + step * 64, k_lane, K, EVEN_K)
            xl0, xl1, xl2, xl3, yl0, yl1, yl2, yl3 = x0, x1, x2, x3, y0, y1, y2, y3  # (bf16: unused)
            if A_F16:  # fp16 activations: hi and lo bf16 parts, converted once for both row tiles
                x0, x1, x2, x3, xl0, xl1, xl2, xl3 = _parts4(x0, x1, x2, x3)
                if TWO_TILES:
                    y0, y1, y2, y3, yl0, yl1, yl2, yl3 = _parts4(y0, y1, y2, y3)
                else:
                    y0, y1, y2, y3, yl0, yl1, yl2, yl3 = x0, x1, x2, x3, xl0, xl1, xl2, xl3
            acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7 = _tile_chunk(
                p0, p1, q0, q1, K, k_lane, w_col + step * W_STEP, s_col + step * S_STEP,
                x0, x1, x2, x3, y0, y1, y2, y3, xl0, xl1, xl2, xl3, yl0, yl1, yl2, yl3,
                acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7, SCALE_KIND, EVEN_K, LANE_K, TWO_TILES, TILED, MAPPED,
                A_F16)
            if ROWS == 2:
                bcc0, bcc1, bcc2, bcc3, bcc4, bcc5, bcc6, bcc7 = _tile_chunk(
                    p2, p3, q2, q3, K, k_lane, w_col + step * W_STEP, s_col + step * S_STEP,
                    x0, x1, x2, x3, y0, y1, y2, y3, xl0, xl1, xl2, xl3, yl0, yl1, yl2, yl3,
                    bcc0, bcc1, bcc2, bcc3, bcc4, bcc5, bcc6, bcc7, SCALE_KIND, EVEN_K, LANE_K, TWO_TILES, TILED,
                    MAPPED, A_F16)

    # the tiles' sums over the K warps: [32, 4] per n8 tile, lane l rows row + l // 4 (and + 8)
    lane = tl.arange(0, 32)
    c_l = lane % 4
    row = pid_n * (16 * ROWS) + lane // 4
    a0 = _sum_k_warps(acc0, acc1, acc2, acc3, K_WARPS)
    a1 = _sum_k_warps(acc4, acc5, acc6, acc7, K_WARPS) if TWO_TILES else a0
    b0, b1 = a0, a1
    if ROWS == 2:
        b0 = _sum_k_warps(bcc0, bcc1, bcc2, bcc3, K_WARPS)
        b1 = _sum_k_warps(bcc4, bcc5, bcc6, bcc7, K_WARPS) if TWO_TILES else b0
    if SPLIT > 1:  # K split over programs: partials, and the row block's last program adds them in split order
        _partials(part_ptr, pid_k, a0, a1, b0, b1, row, c_l, M, N, False, TWO_TILES, ROWS)
        if _split_last(count_ptr + pid_n, SPLIT):
            a0, a1, b0, b1 = tl.zeros_like(a0), tl.zeros_like(a1), tl.zeros_like(b0), tl.zeros_like(b1)
            for k in range(SPLIT):
                a0, a1, b0, b1 = _partials(part_ptr, k, a0, a1, b0, b1, row, c_l, M, N, True, TWO_TILES, ROWS)
            _finish(c_ptr, g_ptr, bias_ptr, a0, a1, b0, b1, row, M, N, stride_g, stride_cm, c_l, SCALE_KIND, HAS_G,
                    HAS_BIAS, TWO_TILES, ROWS)
    else:
        _finish(c_ptr, g_ptr, bias_ptr, a0, a1, b0, b1, row, M, N, stride_g, stride_cm, c_l, SCALE_KIND, HAS_G,
                HAS_BIAS, TWO_TILES, ROWS)


@triton.jit
def _partials(part_ptr, k, a0, a1, b0, b1, row, c, M, N, LOAD: tl.constexpr, TWO_TILES: tl.constexpr,
              ROWS: tl.constexpr):
    """The program's sums to split k's partials, or (LOAD) split k's partials added to them."""
    a0 = _partial(part_ptr, k, a0, row, c * 2, M, N, LOAD)
    if TWO_TILES:
        a1 = _partial(part_ptr, k, a1, row, c * 2 + 8, M, N, LOAD)
    if ROWS == 2:
        b0 = _partial(part_ptr, k, b0, row + 16, c * 2, M, N, LOAD)
        if TWO_TILES:
            b1 = _partial(part_ptr, k, b1, row + 16, c * 2 + 8, M, N, LOAD)
    return a0, a1, b0, b1


@triton.jit
def _finish(c_ptr, g_ptr, bias_ptr, a0, a1, b0, b1, row, M, N, stride_g, stride_cm, c, SCALE_KIND: tl.constexpr,
            HAS_G: tl.constexpr, HAS_BIAS: tl.constexpr, TWO_TILES: tl.constexpr, ROWS: tl.constexpr):
    """The program's tiles' epilogues."""
    _epilogue(c_ptr, g_ptr, bias_ptr, a0, a1, row, M, N, stride_g, stride_cm, c, SCALE_KIND, HAS_G, HAS_BIAS, TWO_TILES)
    if ROWS == 2:
        _epilogue(c_ptr, g_ptr, bias_ptr, b0, b1, row + 16, M, N, stride_g, stride_cm, c, SCALE_KIND, HAS_G, HAS_BIAS,
                  TWO_TILES)


@triton.jit
def _a_row(a_rows_ptr, base, m, M, GATHER: tl.constexpr):
    """A's row for row m of the M-block starting at C row `base` (clamped into the block). int32,
    as in the dense GEMV (fewer registers): decode-sized MoE rows times K stay far below 2^31."""
    m = base + tl.minimum(m, M - 1)
    if GATHER:
        m = tl.maximum(tl.load(a_rows_ptr + m), 0)
    return m


@triton.jit
def _load_a(ptrs, k_lane, K, EVEN_K: tl.constexpr):
    """The lane's 32 columns of one row of A: four [32W, 4] int32 tensors (8 bf16 or fp16 each)."""
    return (_ld(ptrs, (k_lane < K)[:, None], EVEN_K, ""), _ld(ptrs + 4, (k_lane + 8 < K)[:, None], EVEN_K, ""),
            _ld(ptrs + 8, (k_lane + 16 < K)[:, None], EVEN_K, ""), _ld(ptrs + 12, (k_lane + 24 < K)[:, None], EVEN_K, ""))


@triton.jit
def _e8m0_bf16(u):
    """e8m0 byte (int32) -> bf16x2 (int32) of 2^(u-127) twice: bits u << 7; 0 is the subnormal
    2^-127, 255 NaN."""
    bits = tl.where(u == 0, 0x40, tl.where(u == 255, 0x7FC0, u << 7))
    return bits * 0x10001


@triton.jit
def _e4m3_pair(row, s_col, k_lane, K, EVEN_K: tl.constexpr, LANE_K: tl.constexpr):
    """The lane's two NVFP4 scales (columns k_lane.. and k_lane + 16..) of one row, loaded as one
    2-byte load (two 1-byte loads took 0.6-1.9 us more at N = K = 8192, M >= 2) -> 2 bf16x2."""
    j = tl.arange(0, 2)[None, :]
    mask = (k_lane < K)[:, None] if LANE_K else (k_lane[:, None] + j * 16) < K
    b = _ld(row[:, None] + s_col[:, None] + j, mask, EVEN_K, "")
    return tl.split(_e4m3_bf16_folded(b.to(tl.int32)))


# the hardware's e4m3 conversion and the split count, jitted here: this kernel is compiled only (GPU-only
# mma), not a _launch.Kernel
_e4m3 = triton.jit(h.e4m3_native)
_split_last = triton.jit(h.split_last)


@triton.jit
def _e4m3_bf16_folded(b):
    """e4m3 bits (int32) -> bf16x2 (int32) of value * 2^117 twice (exact: at most 2^125.8; NaN stays NaN)."""
    v = (_e4m3(b) * 1.6615349947311448e35).to(tl.bfloat16)
    return (v.to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF) * 0x10001


_LANES_CHECKED: set[str] = set()


def check_lanes(compiled, warps: int) -> None:
    """The kernel is correct only if triton gave every mma operand one value per thread along the
    last dimension (thread t holds element t of it; the first dimension has size R = 1 or lies in
    registers). Checked once per compiled variant, from its TTGIR: a triton that lays them out
    otherwise gets an error, never wrong numbers."""
    if compiled is None or compiled.hash in _LANES_CHECKED:
        return
    ttgir = compiled.asm["ttgir"]
    layouts = dict(re.findall(r"^(#[\w.]+) = (.*)$", ttgir, re.M))
    want = {"sizePerThread": "[1]", "threadsPerWarp": "[32]", "warpsPerCTA": f"[{warps}]"}
    mmas = [line for line in ttgir.splitlines() if 'elementwise_inline_asm "mma.sync' in line]
    if not mmas:
        raise RuntimeError("fp4_gemv_mma: no mma.sync found in the kernel's TTGIR; cannot check its lane layout")
    for line in mmas:
        for name in set(re.findall(r"tensor<[^,>]+, (#[\w.]+)>", line)):
            layout = layouts.get(name, name)
            got = dict(re.findall(r"(\w+) = (\[[\d, ]*\])", layout)) if layout.startswith("#ttg.blocked") else {}
            if any(got.get(k) != v for k, v in want.items()):
                raise RuntimeError(f"fp4_gemv_mma: triton {triton.__version__} laid the mma fragments out as {layout}, "
                                   f"not one value per lane ({want}); the kernel would compute wrong numbers")
    _LANES_CHECKED.add(compiled.hash)


ACT_DTYPES = (torch.bfloat16, torch.float16)  # fp16 as two exact bf16 parts (_F16_PARTS)


def usable(a: torch.Tensor) -> bool:
    """bf16 or fp16 activations on an NVIDIA GPU with bf16 mma.sync (sm_80 on)."""
    if a.device.type != "cuda" or a.dtype not in ACT_DTYPES or torch.version.hip is not None:
        return False
    return device_facts(a.device)[0][0] >= 8


def config(m: int, n: int, k: int, sms: int = 132, grouped: bool = False) -> tuple:
    """(rows, k_warps, chunks, split_k), measured on the H100 (bench/results/h100-triton.md).
    Dense, at N = K = 8192: one lane chunk per step; M <= 8 one 16-row tile per program, M > 8 (two
    n8 tiles, whose activation loads fill L1) two tiles sharing A's fragments (with the word map,
    2 chunks per step lost 0.5-0.8 us to 1 at M = 16). K is split over the program's warps until
    the SMs hold about 32 warps each (16 with two tiles, whose 96 registers fit two 8-warp programs
    an SM). Splitting K over programs as well lost at M <= 8 at every shape measured (N = 256-4096,
    K = 7168-8192, when splits added into a zeroed buffer; N = 1024-4096, K = 8192, 1.05-3x slower,
    with the last program adding the partials). With two tiles, where 8 warps do not fill the SMs,
    4-warp programs split up to 4 ways win: 1.1-1.6x over 8 and 16 warps (N = 256-4096), and split 4
    beat 8 by 1.0-1.15x once the partials were added in-kernel (N = 1024-4096, K = 8192: one program
    adding 8 partials takes longer than the extra programs save). But where two tiles leave each
    warp fewer than 4 steps (short K), the end-of-program sum over the warps' 16 accumulators costs
    more than sharing A's fragments saves, and a split more still: one tile a program, half the
    warps, no split (K = 1536-3072, N = 4096-8192, M = 10-16). With long K the shared fragments win
    (19.3 against 23.4 us at N = K = 8192). Grouped (the decode MoE, many blocks already): 4 warps
    over K, one split, the best of 1 to 8 warps for the MXFP4 MoE at T = 1, 4, 16 (E = 32, H = I =
    2880; 327 us at T = 16 against 367 with 1 warp)."""
    if grouped:
        return 1, 4 if k > 384 else (2 if k > 128 else 1), 1, 1
    rows, per_sm, max_warps = (1, 32, 16) if m <= 8 else (2, 16, 8)
    blocks, steps, want = triton.cdiv(n, 16 * rows), k // 128, per_sm * sms
    k_warps = split = 1
    while k_warps < max_warps and blocks * k_warps * 2 <= want and steps >= k_warps * 2:
        k_warps *= 2
    if rows == 2 and steps < 4 * k_warps:  # short K: one tile a program, half the warps, no split
        rows, k_warps = 1, max(1, k_warps // 2)
    elif rows == 2 and blocks * k_warps * 2 <= want:  # 8 warps short of filling the SMs
        k_warps = min(k_warps, 4)
        while split < 4 and blocks * k_warps * split * 2 <= want and steps >= k_warps * split * 2:
            split *= 2
    return rows, k_warps, 1, split


def register_cap(rows: int, max_regs: int | None = None, tiled: bool = False, f16: bool = False) -> int | None:
    """The maxnreg a launch passes (fp4_gemv_mma's max_regs; None: the default). Two tiles want 2
    programs of 8 warps per SM: at 136 registers (NVFP4, M = 16, before the word map) only one fit,
    31 us instead of 22 at N = K = 8192. The tile layout at 96 (M = 16, (2, 8, 1, 1), no spill) took
    19.6 / 19.1 us (MXFP4 / NVFP4) on the H100, against 19.9 / 19.8 at 128 (ptxas then took 102 /
    110). The plain layout's longer decode spills at 96 (8 / 16 bytes; 114 / 113 registers
    uncapped), so it keeps 128 (bench/sass_count.py). So do fp16 activations (f16): their parts
    spill NVFP4 at 96 on the tile layout (48 bytes, 9 local loads a step) and fit in 122 / 125 at
    128 (tile / plain layout; MXFP4 120 / 117)."""
    if max_regs is None:
        return (96 if tiled and not f16 else 128) if rows == 2 else None
    return max_regs or None


def as_words(w: torch.Tensor) -> torch.Tensor:
    """Packed e2m1 bytes [..., K // 2] -> int32 words [..., K // 8] (8 codes each), copied only when
    the rows are not 4-byte aligned."""
    w = w.view(torch.uint8)
    if w.stride(-1) != 1 or any(st % 4 for st in w.stride()[:-1]) or w.storage_offset() % 4:
        w = w.contiguous()
    return w.view(torch.int32)


def as_pairs(a: torch.Tensor) -> torch.Tensor:
    """bf16 or fp16 activations [M, K] (K even) -> int32 [M, K // 2], each element a pair of columns; copied
    only when the rows are not 4-byte aligned."""
    if a.stride(1) != 1 or a.stride(0) % 2 or a.storage_offset() % 2:
        a = a.contiguous()
    return a.view(torch.int32)


def fp4_gemv_mma(a, words, scales, scale_kind, g, bias, out, out_dtype, cfg=None, *, a_rows=None, block_expert=None,
                 block_m=None, tiled: bool = False, mapped: bool = False, max_regs: int | None = None):
    """A [M <= 16, K] bf16 or fp16 x words [N, K // 8] int32 (scales uint8 [N, K // G], g [N] fp32 or None)
    -> C [M, N] in out_dtype (or into `out`). cfg: (rows, k_warps, chunks, split_k). tiled: W and
    scales are in layouts.fp4_tiles (N a multiple of 16, K of 128; not grouped). mapped: the plain
    layout's rows with each word under the word map (layouts.fp4_words; the tile layout's words are).
    max_regs: registers per thread ptxas may use; None: with two 16-row tiles per program (rows = 2)
    96 (tiled, bf16) or 128, else no cap; 0: no cap.

    Grouped (MoE decode, block_expert given): words [E, N, K // 8], scales [E, N, K // G], g [E, N]
    or None. C has a row per entry of a_rows (A's row; -1 padding) or, without a_rows, per row of
    A, in M-blocks of block_m <= 16 rows; block b multiplies W[block_expert[b]] (-1: zeros)."""
    if a.dtype not in ACT_DTYPES:
        raise ValueError(f"fp4_gemv_mma: activations {a.dtype}: the tensor-core GEMV takes bf16 or fp16")
    k = a.shape[1]
    n = words.shape[-2]
    scales = scales.view(torch.uint8)  # e8m0 bytes or e4m3 bits, whichever dtype they arrive in
    grouped = block_expert is not None
    if words.dim() != (3 if grouped else 2) or scales.dim() != words.dim():
        want = "[E, N, K // 8] with block_expert" if grouped else "[N, K // 8] without block_expert"
        raise ValueError(f"fp4_gemv_mma: words {tuple(words.shape)}, scales {tuple(scales.shape)}: expected {want}")
    if tiled and (grouped or not fp4_tiles_fit(n, k) or not words.is_contiguous() or not scales.is_contiguous()):
        raise ValueError(f"fp4_gemv_mma: the tile layout takes one contiguous [N, K // 8] weight with N % 16 == 0 "
                         f"and K % 128 == 0, got words {tuple(words.shape)} (K={k}){' grouped' if grouped else ''}")
    if grouped:
        m_rows = a_rows.numel() if a_rows is not None else a.shape[0]
        m, blocks = block_m, block_expert.numel()
        if block_m is None or not 0 < block_m <= 16 or blocks * block_m != m_rows:
            raise ValueError(f"fp4_gemv_mma: {m_rows} rows in blocks of {block_m} (<= 16) do not make "
                             f"the {blocks} blocks of block_expert")
        stride_we, stride_se = words.stride(0), scales.stride(0)
        stride_ge, stride_g = (g.stride(0), g.stride(1)) if g is not None else (0, 0)
    else:
        m_rows = m = a.shape[0]
        blocks, stride_we, stride_se, stride_ge = 1, 0, 0, 0
        stride_g = g.stride(0) if g is not None else 0
    rows, k_warps, chunks, split = cfg or config(m, n, k, device_facts(a.device)[1], grouped)
    if rows not in (1, 2) or k_warps not in (1, 2, 4, 8, 16, 32):
        raise ValueError(f"fp4_gemv_mma: cfg {cfg}: rows must be 1 or 2 and k_warps a power of two <= 32")
    step = 128 * chunks * k_warps  # columns a program's warps take per loop iteration
    k_per_split = triton.cdiv(triton.cdiv(k, split), step) * step
    grid = (triton.cdiv(k, k_per_split), triton.cdiv(n, 16 * rows), blocks)
    if grouped and grid[0] > 1:
        raise ValueError(f"fp4_gemv_mma: cfg {cfg}: a grouped (MoE) launch takes no K split over programs")
    c = check_out(out, (m_rows, n), out_dtype, a.device, "fp4_gemv_mma")
    part, counts = split_buffers(grid[0], (m, n), grid[1], a.device, c)  # partials [split, M, N]
    a_words = as_pairs(a)
    f16 = a.dtype == torch.float16  # the activations enter the mmas as two bf16 parts
    dummy = c
    compiled = _fp4_gemv_mma[grid](
        a_words, a_rows if a_rows is not None else dummy, words, scales, g if g is not None else dummy,
        block_expert if grouped else dummy, bias if bias is not None else dummy, c, part, counts, m, n, k,
        k_per_split // 8,
        a_words.stride(0), stride_we, words.stride(-2), stride_se, scales.stride(-2), stride_ge, stride_g,
        c.stride(0), SCALE_KIND=scale_kind, HAS_G=g is not None, HAS_BIAS=bias is not None,
        EVEN_K=k_per_split * grid[0] == k, LANE_K=k % 32 == 0, TWO_TILES=m > 8, ROWS=rows, K_WARPS=k_warps,
        CHUNKS=chunks, ITERS=k_per_split // step, GATHER=a_rows is not None, GROUPED=grouped, TILED=tiled,
        MAPPED=tiled or mapped, A_ALIGN=row_align(a_words), W_ALIGN=row_align(words), S_ALIGN=row_align(scales),
        SPLIT=grid[0], A_F16=f16, num_warps=k_warps, num_stages=1, maxnreg=register_cap(rows, max_regs, tiled, f16),
    )
    check_lanes(compiled, k_warps)
    return c
