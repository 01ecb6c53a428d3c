"""Small-M FP4 GEMV on Hopper's warpgroup MMA (Gluon, sm_90): 8 < M <= 16, bf16 activations,
weights in the tile layout (layouts.fp4_tiles).

C[m, n] = sum_k A[m, k] * W[n, k] (* g[n]) (+ bias[n]), the same product as fp4_gemv_mma. That
kernel's `mma.sync` holds the activations' fragments in registers: at M = 16 two n8 tiles, 32
registers of them next to 16 accumulators, 96 registers a thread, and then too few warps an SM to
cover the weight loads' latency (bench/results/h100-triton.md). Here each warpgroup (4 warps, 64 rows)
runs `wgmma.m64n16k16`: the decoded weights are the register A operand, the 16 activation rows the
shared-memory B operand, so a thread holds 8 accumulators and no activation fragments.

Operand A as decoded: the tile layout's lane pieces are mma.sync's A fragments (fp4_gemv_mma's
docstring), and a warpgroup's A fragment is those of its 4 warps, one 16-row tile each. Lane
(g, c) decodes, per 128-column step, words i = 0..3 of rows g and g + 8 (columns 32c + 8i ..
32c + 8i + 7) into pairs j = 0..3 (columns 2j, 2j + 1 of the word); the k16 MMA number 2i + j // 2
takes pair j as the fragment's k' = 2c + e (j even) or 8 + 2c + e (j odd). So the step's 128
columns reach the MMAs permuted: k' = 32i + 8j + 2c + e holds column 32c + 8i + 2j + e, and the
activations are staged in shared memory in that order (4-byte cp.async copies: the permutation
moves bf16 pairs). `convert_layout(..., assert_trivial=True)` checks at compile time that the
decoded registers reach the operand's layout without moving between threads.

A program: one or two warpgroups (WARPS = 4 or 8 warps, 16 rows each; past N the last tile is re-read,
never stored), STEPS 128-column steps of one K split. It copies all its activations to shared memory
first (zero past M and K), loads weights two steps ahead of the decode (PREFETCH = 2; 1: one), and runs
one k128 MMA (8 wgmma) a step. K split over programs: each writes its fp32 partial, and the last program
of a row block (an atomic count, which it resets for the next launch) adds the partials in split order
and writes C: no zeroing or conversion kernels, the same sums every run (as fp4_gemv_mma's splits;
partials and counters from _launch.split_buffers; the count is Gluon here, not _helpers.split_last).

On the H100 this is correct and slower than fp4_gemv_mma (0.79-1.00x, 20.1 against 19.2 us at N = K =
8192, M = 16), so the engine runs it only when asked for (backend triton_wgmma).

Exactness as in fp4_gemv_mma (same decode): every decoded weight is exact in bf16 and the tensor
cores add exact products in fp32. Figures: bench/results/h100-triton.md.
"""

from __future__ import annotations

import torch
import triton

from ..layouts import fp4_tiles_fit
from ._launch import check_out, device_facts, split_buffers
from .fp4_gemv_mma import _e4m3_bf16_folded, _e8m0_bf16, _tile_decode_ptx, as_pairs

try:  # Gluon is triton's lower-level language (triton >= 3.5); without it this kernel is unavailable
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import async_copy, fence_async_shared, warpgroup_mma
    # triton 3.6 names the cp.async copy async_copy_global_to_shared; 3.9 async_load
    _async_load = getattr(async_copy, "async_load", async_copy.async_copy_global_to_shared)
    _barrier = getattr(gl, "barrier", None) or gl.thread_barrier  # the CTA barrier, renamed alike
except ImportError:  # pragma: no cover - older triton
    gluon = None

MIN_M = 8  # M above this runs here (two n8 tiles for mma.sync; one n16 wgmma here)
MAX_STEPS = 16  # 128-column steps of activations a program stages by default (4 KB each; twice this at most)

if gluon is not None:
    _DECODE_MX = gl.constexpr(_tile_decode_ptx(True, halves=True))
    _DECODE_NV = gl.constexpr(_tile_decode_ptx(False, halves=True))
    # staged activations [step, m, k' / 2] as bf16 pairs, read by the MMAs as bf16 [step, m, k']
    _B_PAIRS = gl.constexpr(gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=32, rank=2))
    _B_BF16 = gl.constexpr(gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2))

    # the register layouts, for a program of `warps` warps (one 16-row tile each)
    @gluon.constexpr_function
    def _words_layout(warps):
        """A step's words [warp, row half h, g, c, scale group, word in group]: lane (g, c), 8 a thread."""
        return gl.BlockedLayout([1, 2, 1, 1, 2, 2], [1, 1, 8, 4, 1, 1], [warps, 1, 1, 1, 1, 1], [5, 4, 3, 2, 1, 0])

    @gluon.constexpr_function
    def _words_load_layout(warps):
        """The same words as loaded, [warp, h, g, c, word]: 16 bytes a row half."""
        return gl.BlockedLayout([1, 2, 1, 1, 4], [1, 1, 8, 4, 1], [warps, 1, 1, 1, 1], [4, 3, 2, 1, 0])

    @gluon.constexpr_function
    def _acc_layout(warps):
        return gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[warps, 1], instr_shape=[16, 16, 16])

    @gluon.constexpr_function
    def _stage_layout(warps):
        """The activation copies [m, k' / 2]: a warp's 32 lanes along a row."""
        return gl.BlockedLayout([1, 1], [1, 32], [warps, 1], [1, 0])

    @gluon.constexpr_function
    def _sliced(layout, dim, rank):
        """`layout` with every dim but `dim` sliced away (highest first): an arange along `dim`."""
        for d in reversed(range(rank)):
            if d != dim:
                layout = gl.SliceLayout(d, layout)
        return layout

    @gluon.jit
    def _along(n: gl.constexpr, dim: gl.constexpr, rank: gl.constexpr, layout: gl.constexpr):
        """arange(n) along `dim` of a rank-`rank` tensor in `layout` (size 1 elsewhere)."""
        x = gl.arange(0, n, layout=_sliced(layout, dim, rank))
        for d in gl.static_range(rank):
            if d != dim:
                x = gl.expand_dims(x, d)
        return x

    if hasattr(gl.shared_memory_descriptor, "reinterpret"):  # triton 3.9 (3.6: _reinterpret)
        @gluon.jit
        def _as_bf16(staged, STEPS: gl.constexpr):
            """The staged bf16 pairs as bf16 [STEPS, 16, 128] (the same bytes)."""
            return staged.reinterpret(gl.bfloat16, [STEPS, 16, 128], _B_BF16)
    else:
        @gluon.jit
        def _as_bf16(staged, STEPS: gl.constexpr):
            """The staged bf16 pairs as bf16 [STEPS, 16, 128] (the same bytes)."""
            return staged._reinterpret(gl.bfloat16, [STEPS, 16, 128], _B_BF16)

    @gluon.jit
    def _operand(words, scales, SCALE_KIND: gl.constexpr, WARPS: gl.constexpr):
        """A step's words [WARPS, 2, 8, 4, 2, 2] and bf16x2 scales (same shape) -> the wgmma A operand
        [16 WARPS rows, 128 k'] bf16 (module docstring: k' = 32i + 16 (j // 2) + 8 (j % 2) + 2c + e)."""
        asm: gl.constexpr = _DECODE_MX if SCALE_KIND == 0 else _DECODE_NV
        h = gl.inline_asm_elementwise(asm, "=h,=h,=h,=h,=h,=h,=h,=h,r,r", [words, scales],
                                      dtype=(gl.bfloat16,) * 8, is_pure=True, pack=1)
        # pair j is (h[2j], h[2j + 1]); the joins add axes e, then j % 2, then j // 2
        t = gl.join(gl.join(gl.join(h[0], h[1]), gl.join(h[2], h[3])),
                    gl.join(gl.join(h[4], h[5]), gl.join(h[6], h[7])))
        # [w, h, g, c, grp, ii, e, jj, j // 2] -> rows (w, h, g), k' (grp, ii, j // 2, jj, c, e)
        t = gl.reshape(gl.permute(t, (0, 1, 2, 4, 5, 8, 7, 3, 6)), (16 * WARPS, 128))
        return gl.convert_layout(t, gl.DotOperandLayout(0, _acc_layout(WARPS), 2), assert_trivial=True)

    @gluon.jit
    def _load_step(w_ptrs, s_ptrs, step, S_STEP: gl.constexpr, WARPS: gl.constexpr):
        """One step's words and scale bytes (the weights are read once: evict first)."""
        words = gl.load(w_ptrs + step * 256, eviction_policy="evict_first")  # 16 bytes a row half
        words = gl.convert_layout(gl.reshape(words, (WARPS, 2, 8, 4, 2, 2)), _words_layout(WARPS),
                                  assert_trivial=True)
        scales = gl.load(s_ptrs + step * S_STEP).to(gl.int32)
        return words, scales

    @gluon.jit
    def _widen(scales, words, SCALE_KIND: gl.constexpr):
        """Scale bytes (one per lane chunk and row, NVFP4 two) -> bf16x2 of the scale per word, words'
        shape [WARPS, 2, 8, 4, 2, 2] (e8m0 exactly; e4m3 times 2^117, fp4_gemv_mma's helpers)."""
        if SCALE_KIND == 0:
            s = gl.expand_dims(_e8m0_bf16(scales), 4)
        else:
            s = _e4m3_bf16_folded(scales)
        s, words = gl.broadcast(gl.expand_dims(s, 5), words)
        return s

    @gluon.jit
    def _fp4_wgmma_kernel(a_ptr, w_ptr, s_ptr, g_ptr, bias_ptr, c_ptr, part_ptr, count_ptr,
                          M, N, stride_am, stride_g, stride_cm, total_steps, tile_words, tile_scales,
                          SCALE_KIND: gl.constexpr, HAS_G: gl.constexpr, HAS_BIAS: gl.constexpr,
                          SPLIT: gl.constexpr, STEPS: gl.constexpr, PREFETCH: gl.constexpr, WARPS: gl.constexpr):
        pid_k = gl.program_id(0)
        pid_n = gl.program_id(1)
        first = pid_k * STEPS
        n_steps = gl.minimum(total_steps - first, STEPS)

        # the activations, permuted (module docstring): word u = 16i + 8 (j // 2) + 4 (j % 2) + c of a
        # step holds A's word 16c + 4i + j; zero past M and past K
        m_i = _along(16, 0, 2, _stage_layout(WARPS))
        u = _along(64, 1, 2, _stage_layout(WARPS))
        a_ptrs = a_ptr + m_i * stride_am + first * 64 + (u % 4) * 16 + (u // 16) * 4 + (u // 4) % 4
        staged = gl.allocate_shared_memory(gl.int32, [STEPS, 16, 64], _B_PAIRS)
        for s in gl.static_range(STEPS):  # one step a copy: a multi-step copy does not lower (triton 3.6)
            _async_load(staged.index(s), a_ptrs + s * 64, mask=(m_i < M) & (first + s < total_steps))
        async_copy.commit_group()

        # the program's weights: warp w reads tile pid_n * WARPS + w (clamped into N); lane (g, c) its
        # 16 bytes of each row half and its scale bytes (layouts.fp4_tiles)
        WL: gl.constexpr = _words_load_layout(WARPS)
        tile = gl.minimum(pid_n * WARPS + _along(WARPS, 0, 5, WL), N // 16 - 1)
        w_ptrs = (w_ptr + tile * tile_words + first * 256 + _along(2, 1, 5, WL) * 128 + _along(8, 2, 5, WL) * 16
                  + _along(4, 3, 5, WL) * 4 + _along(4, 4, 5, WL))
        if SCALE_KIND == 0:  # MXFP4: (g, c, half) bytes, 64 a step
            S_STEP: gl.constexpr = 64
            SL: gl.constexpr = gl.SliceLayout(4, gl.SliceLayout(5, _words_layout(WARPS)))
            s_tile = gl.minimum(pid_n * WARPS + _along(WARPS, 0, 4, SL), N // 16 - 1)
            s_ptrs = (s_ptr + s_tile * tile_scales + first * S_STEP + _along(2, 1, 4, SL)
                      + _along(8, 2, 4, SL) * 8 + _along(4, 3, 4, SL) * 2)
        else:  # NVFP4: (g, c, half, group) bytes, 128 a step
            S_STEP: gl.constexpr = 128
            SL: gl.constexpr = gl.SliceLayout(5, _words_layout(WARPS))
            s_tile = gl.minimum(pid_n * WARPS + _along(WARPS, 0, 5, SL), N // 16 - 1)
            s_ptrs = (s_ptr + s_tile * tile_scales + first * S_STEP + _along(2, 1, 5, SL) * 2
                      + _along(8, 2, 5, SL) * 16 + _along(4, 3, 5, SL) * 4 + _along(2, 4, 5, SL))

        w0, s0 = _load_step(w_ptrs, s_ptrs, 0, S_STEP, WARPS)
        w1, s1 = _load_step(w_ptrs, s_ptrs, gl.minimum(1, n_steps - 1), S_STEP, WARPS)
        async_copy.wait_group(0)
        fence_async_shared()  # the copies are generic-proxy writes; wgmma reads through the async proxy
        _barrier()
        b_smem = _as_bf16(staged, STEPS)

        acc = gl.zeros([16 * WARPS, 16], gl.float32, _acc_layout(WARPS))
        for step in range(n_steps):
            if PREFETCH == 2:  # w1 is the next step's; load the one after
                w2, s2 = _load_step(w_ptrs, s_ptrs, gl.minimum(step + 2, n_steps - 1), S_STEP, WARPS)
            else:
                w2, s2 = w1, s1
            a = _operand(w0, _widen(s0, w0, SCALE_KIND), SCALE_KIND, WARPS)
            acc = warpgroup_mma(a, b_smem.index(step).permute((1, 0)), acc)
            if PREFETCH == 2:
                w0, s0, w1, s1 = w1, s1, w2, s2
            else:
                w0, s0 = w1, s1
                w1, s1 = _load_step(w_ptrs, s_ptrs, gl.minimum(step + 2, n_steps - 1), S_STEP, WARPS)

        ACC: gl.constexpr = _acc_layout(WARPS)
        rows = gl.expand_dims(pid_n * 16 * WARPS + gl.arange(0, 16 * WARPS, layout=gl.SliceLayout(1, ACC)), 1)
        ms = gl.expand_dims(gl.arange(0, 16, layout=gl.SliceLayout(0, ACC)), 0)
        if SPLIT > 1:
            # partials [split, 16, N]; the row block's last program (acq_rel count) sums them in order
            part = part_ptr + ms * N + rows
            gl.store(part + pid_k * 16 * N, acc, mask=rows < N)
            _barrier()  # every thread's partial before the count's release
            done = gl.atomic_add(count_ptr + pid_n, 1, sem="acq_rel")
            if done == SPLIT - 1:
                acc = gl.zeros([16 * WARPS, 16], gl.float32, ACC)
                for k in gl.static_range(SPLIT):
                    acc += gl.load(part + k * 16 * N, mask=rows < N, other=0.0, cache_modifier=".cg")
                gl.atomic_xchg(count_ptr + pid_n, 0)  # ready for the next launch
                _store(acc, rows, ms, g_ptr, bias_ptr, c_ptr, M, N, stride_g, stride_cm, SCALE_KIND, HAS_G, HAS_BIAS)
        else:
            _store(acc, rows, ms, g_ptr, bias_ptr, c_ptr, M, N, stride_g, stride_cm, SCALE_KIND, HAS_G, HAS_BIAS)

    @gluon.jit
    def _store(acc, rows, ms, g_ptr, bias_ptr, c_ptr, M, N, stride_g, stride_cm, SCALE_KIND: gl.constexpr,
               HAS_G: gl.constexpr, HAS_BIAS: gl.constexpr):
        """C[m, n] = acc[n, m] (* g[n], NVFP4's 2^9) (+ bias[n]), masked to M x N."""
        r = gl.minimum(rows, N - 1)
        if SCALE_KIND == 1:
            acc = acc * 512.0  # NVFP4's scales carried 2^-9
        if HAS_G:
            acc = acc * gl.load(g_ptr + r * stride_g)
        if HAS_BIAS:
            acc = acc + gl.load(bias_ptr + r).to(gl.float32)
        gl.store(c_ptr + ms * stride_cm + rows, acc.to(c_ptr.dtype.element_ty), mask=(ms < M) & (rows < N))


def available() -> bool:
    return gluon is not None


def usable(a: torch.Tensor, m: int) -> bool:
    """bf16 activations, 8 < M <= 16, on an sm_90 GPU (wgmma is sm_90a's) with Gluon."""
    if gluon is None or not MIN_M < m <= 16 or a.device.type != "cuda" or a.dtype != torch.bfloat16:
        return False
    return torch.version.hip is None and device_facts(a.device)[0] == (9, 0)


def config(m: int, n: int, k: int, sms: int = 132) -> tuple[int, int, int, int | None]:
    """(split, prefetch, warps, max_regs), from the H100 (bench/results/h100-triton.md, 2026-12-07
    15:30): two warpgroups a program (128 rows; one warpgroup a program left N = K = 8192 at 1.1
    waves, 23.8 us against 20.1), K split until the programs are about 2 an SM (each split at least
    2 steps, at most 2 MAX_STEPS), weights two steps ahead, no register cap (64 spilled and lost
    0.6-2.5 us)."""
    blocks, steps = triton.cdiv(n, 128), k // 128
    split = 1
    while (blocks * split * 2 <= 2 * sms and steps >= split * 4) or triton.cdiv(steps, split) > 2 * MAX_STEPS:
        split *= 2
    return split, 2, 8, None


def fp4_wgmma(a, words, scales, scale_kind, g, bias, out, out_dtype, cfg=None):
    """A [M, K] bf16 (8 < M <= 16) x words [N, K // 8] int32 and scales [N, K // G] uint8 in
    layouts.fp4_tiles (N % 16 == 0, K % 128 == 0; g [N] fp32 or None) -> C [M, N] in out_dtype (or
    into `out`, [M, N] contiguous). cfg: (split, prefetch, warps (4 or 8: 16 rows each),
    max_regs (None: no cap))."""
    m, k = a.shape
    n = words.shape[0]
    if not fp4_tiles_fit(n, k) or tuple(words.shape) != (n, k // 8) or not words.is_contiguous() \
            or not scales.is_contiguous() or not 0 < m <= 16:
        raise ValueError(f"fp4_wgmma: takes A [M <= 16, K] and tile-layout words [N, K // 8] (N % 16 == 0, "
                         f"K % 128 == 0), got A {tuple(a.shape)}, words {tuple(words.shape)}")
    if a.dtype != torch.bfloat16:  # as_pairs would hand fp16 bits to the bf16 MMAs as they are
        raise ValueError(f"fp4_wgmma: activations {a.dtype}: the warpgroup-MMA GEMV takes bf16")
    if n * k // 8 >= 2**31:
        raise ValueError(f"fp4_wgmma: N x K = {n} x {k} is past the kernel's int32 offsets")
    split, prefetch, warps, max_regs = cfg or config(m, n, k, device_facts(a.device)[1])
    if warps not in (4, 8) or prefetch not in (1, 2):
        raise ValueError(f"fp4_wgmma: cfg {cfg}: warps must be 4 or 8 (one or two warpgroups), prefetch 1 or 2")
    total = k // 128
    steps = triton.cdiv(total, split)
    split = triton.cdiv(total, steps)  # every program has a step
    if steps > 2 * MAX_STEPS:
        raise ValueError(f"fp4_wgmma: split {split} leaves {steps} steps a program (shared memory holds "
                         f"{2 * MAX_STEPS})")
    pairs = as_pairs(a)
    c = check_out(out, (m, n), out_dtype, a.device, "fp4_wgmma")
    blocks = triton.cdiv(n, 16 * warps)
    part, counts = split_buffers(split, (16, n), blocks, a.device, c)  # partials of all 16 columns
    dummy = c
    _fp4_wgmma_kernel[(split, blocks)](
        pairs, words, scales.view(torch.uint8), g if g is not None else dummy,
        bias if bias is not None else dummy, c, part, counts, m, n, pairs.stride(0),
        g.stride(0) if g is not None else 0, c.stride(0), total, 16 * k // 8, 16 * k // (32 if scale_kind == 0 else 16),
        SCALE_KIND=scale_kind, HAS_G=g is not None, HAS_BIAS=bias is not None, SPLIT=split, STEPS=steps,
        PREFETCH=prefetch, WARPS=warps, num_warps=warps, maxnreg=max_regs)
    return c
