"""The small-M FP4 kernels (triton, interpreted) against the torch reference, through the launch
paths the conformance cases do not reach on CPU: explicit configurations with split-K (the last
program adds the partials), 1024-wide steps over a ragged K (masked last step), rows past N, and
both scale kinds for the M = 1 kernel and the tensor-core one. A GPU runs the same launches
compiled."""

import pytest
import torch

from qcert.kernels import ops as ref
from qcert.kernels.mxfp4 import quantize_mxfp4
from qcert.kernels.nvfp4 import quantize_nvfp4
from qcert.kernels.tolerances import assert_close_rel

fv = pytest.importorskip("qcert.kernels.triton.fp4_gemv")

CASES = [  # kind, M, N, K, (BLOCK_N, BLOCK_K, split_k, warps, stages)
    ("mxfp4", 1, 20, 2880, (4, 1024, 1, 1, 1)),  # ragged K: 3 steps, the last masked
    ("mxfp4", 1, 5, 2048, (4, 1024, 2, 1, 1)),  # split K, fewer rows than BLOCK_N
    ("nvfp4", 1, 24, 1040, (4, 1024, 1, 1, 1)),
    ("nvfp4", 1, 9, 512, (4, 256, 2, 1, 1)),
    ("mxfp4", 16, 40, 256, (16, 64, 2, 4, 1)),  # tensor-core kernel, split K
    ("nvfp4", 3, 33, 176, (16, 64, 1, 4, 1)),  # K = 11 groups: exact steps of 16 (ieee), masked ones of 64 (GPU)
]


def _quantized(kind, x, w, bias):
    """w quantized as `kind` on x's device: (packed, scales as bytes, scale kind, per-row g or None,
    the torch reference output for x)."""
    if kind == "mxfp4":
        wp, ws = (t.to(x.device) for t in quantize_mxfp4(w))
        return wp, ws.view(torch.uint8), fv.E8M0, None, ref.mxfp4_linear(x.float(), wp, ws, bias.float())
    wp, ws, s2 = (t.to(x.device) for t in quantize_nvfp4(w))
    return (wp, ws.view(torch.uint8), fv.E4M3, s2.float().reshape(-1).expand(w.shape[0]),
            ref.nvfp4_linear(x.float(), wp, ws, s2, bias.float()))


def _gemv_and_reference(kind, x, w, bias, cfg, **kw):
    """(fp4_gemv, the torch reference) for w quantized as `kind`, on x's device."""
    wp, ws, kind_id, g, want = _quantized(kind, x, w, bias)
    return fv.fp4_gemv(x, wp, ws, kind_id, g=g, bias=bias, cfg=cfg, **kw), want


def _inputs(m, n, k):
    g = torch.Generator().manual_seed(n * k + m)
    w = torch.randn(n, k, generator=g) * torch.exp(torch.randn(n, 1, generator=g))
    return w, torch.randn(m, k, generator=g), torch.randn(n, generator=g)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="compiled launches need an NVIDIA GPU"))])
@pytest.mark.parametrize("kind,m,n,k,cfg", CASES)
def test_fp4_gemv_matches_reference(kind, m, n, k, cfg, device):
    """Interpreted on CPU, compiled on a GPU (fp32 activations there: what the tensor-core kernel
    leaves to these kernels)."""
    w, x, bias = (t.to(device) for t in _inputs(m, n, k))
    wp, ws, kind_id, g, want = _quantized(kind, x, w, bias)
    got = fv.fp4_gemv(x, wp, ws, kind_id, g=g, bias=bias, cfg=cfg, mma=False)
    assert_close_rel(got, want, "fp32")
    # every element written, and a K split's partials added in split order: a second launch into
    # NaNs gives the same bits
    again = fv.fp4_gemv(x, wp, ws, kind_id, g=g, bias=bias, cfg=cfg, mma=False, out=torch.full_like(got, torch.nan))
    assert torch.equal(again, got)


def test_tensor_core_dots_keep_k_steps_of_64(monkeypatch):
    """fp4_gemv's M = 2..16 kernel: the ieee dot takes K = 176 (NVFP4) in exact steps of 16; a
    tensor-core dot keeps steps of 64, a config's smaller ones too, and masks the tail (16-row tf32
    tiles summed wrong with steps of 16 on the H100: CASES' ("nvfp4", 3, 33, 176) on cuda).
    Interpreted (the tf32 dots fp32), the masked steps sum right."""
    assert fv._block_k(176, 64, 16) == 16
    assert all(fv._block_k(176, bk, 16, dot) == 64 for dot in ("tf32", "tf32x2", "bf16") for bk in (16, 32, 64))
    assert fv._block_k(2880, 128, 32, "tf32x2") == 64  # exact steps where they are 64 or more
    assert fv._block_k(256, 16, 32) == 32  # never below one scale group (MXFP4: 32)
    monkeypatch.setattr(fv, "dot_precision", lambda _x: "tf32x2")
    w, x, bias = _inputs(3, 33, 176)
    got, want = _gemv_and_reference("nvfp4", x, w, bias, (16, 64, 1, 4, 1), mma=False)
    assert_close_rel(got, want, "fp32")


MMA_CASES = [  # kind, M, N, K, (rows, k_warps, chunks, split_k): partial row tiles, ragged K, two n8 tiles,
    # one or two 16-row tiles per program, K split over a program's warps, over programs (partials
    # added by the last program), and both
    ("mxfp4", 1, 8192, 8192, None),
    ("mxfp4", 3, 515, 2880, (1, 1, 2, 1)),  # K = 22.5 steps of 128: a masked last chunk
    ("mxfp4", 2, 515, 2880, (2, 8, 1, 1)),  # the same tail with 8 K warps, some past K altogether
    ("mxfp4", 9, 77, 1056, (1, 1, 4, 2)),
    ("mxfp4", 7, 77, 1056, (1, 1, 4, 2)),
    ("mxfp4", 8, 300, 4128, (2, 4, 2, 2)),
    ("mxfp4", 16, 300, 4096, (2, 4, 2, 2)),  # 300 rows: the last program's second tile is past N
    ("mxfp4", 5, 8192, 8192, (1, 16, 1, 1)),
    ("mxfp4", 16, 8192, 8192, None),
    ("nvfp4", 1, 300, 4112, (1, 1, 2, 4)),  # K % 32 == 16: half of a lane's chunk past K
    ("nvfp4", 1, 300, 4112, (2, 4, 2, 2)),
    ("nvfp4", 12, 130, 1040, (1, 2, 1, 3)),
    ("nvfp4", 6, 130, 1040, (1, 2, 1, 3)),
    ("nvfp4", 8, 8192, 8192, None),
    ("nvfp4", 16, 8192, 8192, None),
    ("nvfp4", 4, 8192, 8192, None),
]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the tensor-core GEMV runs on an NVIDIA GPU only")
@pytest.mark.parametrize("kind,m,n,k,cfg", MMA_CASES)
def test_fp4_gemv_mma_matches_reference(kind, m, n, k, cfg):
    from qcert.kernels.triton import fp4_gemv_mma

    w, x, bias = _inputs(m, n, k)
    x, bias = x.to(torch.bfloat16).cuda(), bias.to(torch.bfloat16).cuda()
    assert fp4_gemv_mma.usable(x)
    got, want = _gemv_and_reference(kind, x, w, bias, cfg, out_dtype=torch.float32)
    assert_close_rel(got, want, "fp32")


F16_CASES = [  # fp16 activations (hi and lo bf16 parts): one and two n8 tiles, ragged K, splits
    ("mxfp4", 1, 8192, 8192, None),
    ("mxfp4", 3, 515, 2880, (1, 1, 2, 1)),
    ("mxfp4", 16, 300, 4096, (2, 4, 2, 2)),
    ("nvfp4", 12, 130, 1040, (1, 2, 1, 3)),
    ("nvfp4", 8, 8192, 8192, None),
    ("nvfp4", 16, 8192, 8192, None),
]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the tensor-core GEMV runs on an NVIDIA GPU only")
@pytest.mark.parametrize("kind,m,n,k,cfg", F16_CASES)
def test_fp4_gemv_mma_takes_fp16_activations_exactly(kind, m, n, k, cfg):
    """fp16 activations through the bf16 mmas as two parts, on the plain layout and (whole tiles)
    the tile layout: the reference's tolerance for fp32, and an infinite activation gives the
    reference's infinities and NaNs (0 * inf) in its row."""
    from qcert.kernels import layouts
    from qcert.kernels.triton import fp4_gemv_mma as fvm

    w, x, bias = _inputs(m, n, k)
    x, bias = (x * 100).to(torch.float16).cuda(), bias.to(torch.float16).cuda()  # past bf16's 8 bits
    x[0, 5] = -torch.inf
    assert fvm.usable(x)
    wp, ws, kind_id, g, want = _quantized(kind, x, w, bias)
    runs = [(fvm.as_words(wp), ws, False)]
    if layouts.fp4_tiles_fit(n, k):
        tw, ts = layouts.fp4_tiles(wp, ws)
        runs.append((fvm.as_words(tw), ts, True))
    for words, scales, tiled in runs:
        got = fvm.fp4_gemv_mma(x, words, scales, kind_id, g, bias, None, torch.float32, cfg, tiled=tiled)
        assert torch.equal(got[0].isnan(), want[0].isnan()) and got[0].isinf().any()
        ok = ~want[0].isnan()
        assert torch.equal(got[0][ok], want[0][ok])
        if m > 1:
            assert_close_rel(got[1:], want[1:], "fp32")  # a bf16-rounded x would be off by about 2^-9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the tensor-core GEMV runs on an NVIDIA GPU only")
def test_fp4_gemv_mma_grouped_takes_fp16_activations():
    """The decode MoE's grouped launch with fp16 activations: rows gathered through a_rows, an expert
    per 8-row block, an unused block (zeros); padding rows (-1) may hold anything and are skipped."""
    from qcert.kernels.mxfp4 import dequantize_mxfp4
    from qcert.kernels.triton import fp4_gemv_mma

    e, n, k = 3, 80, 1024
    gen = torch.Generator().manual_seed(12)
    wp, ws = (torch.stack(t).cuda() for t in zip(*(quantize_mxfp4(torch.randn(n, k, generator=gen)) for _ in range(e))))
    x = (torch.randn(5, k, generator=gen) * 100).to(torch.float16).cuda()
    a_rows = torch.tensor([0, 3, 4, 1, 2, 0, -1, -1, 4, 2, 1, 0, 3, 3, 2, 1] + [-1] * 8, dtype=torch.int32).cuda()
    block_expert = torch.tensor([2, 0, -1], dtype=torch.int32).cuda()
    got = fp4_gemv_mma.fp4_gemv_mma(x, fp4_gemv_mma.as_words(wp), ws.view(torch.uint8), fv.E8M0, None, None, None,
                                    torch.float32, a_rows=a_rows, block_expert=block_expert, block_m=8)
    want = torch.zeros_like(got)
    for i, (row, ex) in enumerate(zip(a_rows.tolist(), [2] * 8 + [0] * 8 + [-1] * 8)):
        if ex >= 0 and row >= 0:
            want[i] = x[row].float() @ dequantize_mxfp4(wp[ex], ws[ex]).T
    used = (a_rows >= 0).cpu() | (torch.arange(24) >= 16)  # the unused block is written as zeros
    assert_close_rel(got[used], want[used], "fp32")


def _ttgir(threads: str) -> str:
    layout = f"#ttg.blocked<{{sizePerThread = [1], threadsPerWarp = {threads}, warpsPerCTA = [4], order = [0]}}>"
    return (f"#blocked = {layout}\n"
            '%1:4 = tt.elementwise_inline_asm "mma.sync.aligned.m16n8k16 ..." {pure = true} %a : '
            "tensor<128xi32, #blocked> -> tensor<128xf32, #blocked>\n")


class _Compiled:
    def __init__(self, ttgir: str, name: str) -> None:
        self.asm, self.hash = {"ttgir": ttgir}, name


def test_check_lanes_accepts_one_value_per_thread_and_refuses_others():
    from qcert.kernels.triton.fp4_gemv_mma import check_lanes

    check_lanes(_Compiled(_ttgir("[32]"), "lanes-ok"), 4)
    with pytest.raises(RuntimeError, match="not one value per lane"):
        check_lanes(_Compiled(_ttgir("[16]"), "lanes-split"), 4)
    with pytest.raises(RuntimeError, match="not one value per lane"):
        check_lanes(_Compiled(_ttgir("[32]"), "warps-differ"), 2)
    with pytest.raises(RuntimeError, match="not one value per lane"):
        check_lanes(_Compiled(_ttgir("[32]").replace("sizePerThread = [1]", "sizePerThread = [2]"), "two-per-thread"), 4)
    with pytest.raises(RuntimeError, match="no mma.sync"):
        check_lanes(_Compiled("#blocked = x\n", "no-mma"), 4)


def test_fp4_gemv_cfg_of_the_other_kernel_is_a_clear_error():
    wp, ws = quantize_mxfp4(torch.randn(8, 64))
    with pytest.raises(ValueError, match=r"cfg=\(1, 8, 2, 1\) does not fit"):
        fv.fp4_gemv(torch.randn(1, 64), wp, ws, fv.E8M0, cfg=(1, 8, 2, 1))


def test_fp4_gemv_mma_weight_rank_must_match_grouping():
    from qcert.kernels.triton import fp4_gemv_mma

    wp, ws = quantize_mxfp4(torch.randn(2, 8, 64))
    words, scales, x = fp4_gemv_mma.as_words(wp), ws.view(torch.uint8), torch.randn(8, 64, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"expected \[N, K // 8\] without block_expert"):
        fp4_gemv_mma.fp4_gemv_mma(x, words, scales, fv.E8M0, None, None, None, torch.float32)
    with pytest.raises(ValueError, match=r"expected \[E, N, K // 8\] with block_expert"):
        fp4_gemv_mma.fp4_gemv_mma(x, words[0], scales[0], fv.E8M0, None, None, None, torch.float32,
                                  block_expert=torch.zeros(1, dtype=torch.int32), block_m=8)


TILED_CASES = [  # kind, M, N, K, cfg: weights in layouts.fp4_tiles (whole 16-row tiles, 128-column steps)
    ("mxfp4", 1, 8192, 8192, None),
    ("mxfp4", 8, 1024, 2816, (1, 2, 1, 1)),
    ("mxfp4", 16, 1040, 4096, (2, 8, 2, 1)),  # two tiles per program, 65 tiles: the last program's second past N
    ("nvfp4", 6, 1040, 1024, (2, 4, 1, 1)),
    ("mxfp4", 5, 512, 4096, (1, 1, 4, 4)),  # K split over programs
    ("mxfp4", 13, 512, 1024, (2, 4, 1, 3)),  # split 3 over 8 steps: the last split partial (masked)
    ("nvfp4", 1, 4096, 4096, None),
    ("nvfp4", 16, 4096, 4096, None),
    ("nvfp4", 3, 528, 1152, (2, 2, 1, 2)),
    ("nvfp4", 9, 256, 2048, (1, 16, 1, 1)),
]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the tensor-core GEMV runs on an NVIDIA GPU only")
@pytest.mark.parametrize("kind,m,n,k,cfg", TILED_CASES)
def test_fp4_gemv_mma_on_tiles_equals_the_mapped_rows(kind, m, n, k, cfg):
    """The tile-layout GEMV (per warp step one 1 KB weight block and the lane's scale bytes in one
    load) against the reference and the plain layout, and bit for bit against the same kernel on
    the same mapped words in plain rows (layouts.fp4_words). Not bit for bit against the plain
    layout: its decode pairs codes (j, j + 4), the word map's (2j, 2j + 1), and the tensor cores add
    a k16's products in an order of their own, so the last bits differ (H100, 2026-12-07)."""
    from qcert.kernels import layouts
    from qcert.kernels.triton import fp4_gemv_mma as fvm

    w, x, bias = _inputs(m, n, k)
    x, bias = x.to(torch.bfloat16).cuda(), bias.to(torch.bfloat16).cuda()
    wp, ws, kind_id, g, want = _quantized(kind, x, w, bias)
    tw, ts = layouts.fp4_tiles(wp, ws)
    got = fvm.fp4_gemv_mma(x, fvm.as_words(tw), ts, kind_id, g, bias, None, torch.float32, cfg, tiled=True)
    plain = fvm.fp4_gemv_mma(x, fvm.as_words(wp), ws, kind_id, g, bias, None, torch.float32, cfg)
    mw = layouts.fp4_words(wp, ws)[0]
    mapped = fvm.fp4_gemv_mma(x, fvm.as_words(mw), ws, kind_id, g, bias, None, torch.float32, cfg, mapped=True)
    assert_close_rel(got, want, "fp32")
    assert_close_rel(got, plain, "fp32")
    # bit for bit at every split: each split's sums are the same, added in split order (asserted at
    # every split since 2026-12-07 20:30; passed on the H100 on 2026-12-08)
    assert torch.equal(got, mapped)
    # a K split over programs: each row block's last program adds the partials in split order, so a
    # second run (into an output full of NaN) gives the same bits
    again = torch.full_like(got, float("nan"))
    fvm.fp4_gemv_mma(x, fvm.as_words(tw), ts, kind_id, g, bias, again, torch.float32, cfg, tiled=True)
    assert torch.equal(got, again)


WGMMA_CASES = [  # kind, M, N, K, (split, prefetch, warps, max_regs) or None (fp4_wgmma.config)
    ("mxfp4", 16, 1040, 1024, None),  # the last row block one tile: the others past N
    ("mxfp4", 9, 512, 4096, (8, 2, 8, 64)),  # partials added by each row block's last program
    ("mxfp4", 12, 256, 1152, (4, 1, 4, None)),  # 9 steps over 4 splits: the last split one step
    ("nvfp4", 16, 4096, 4096, None),
    ("nvfp4", 13, 528, 2048, (2, 2, 8, None)),  # 33 tiles in 128-row blocks
    ("nvfp4", 16, 64, 512, (1, 1, 4, None)),  # no split: C straight from the accumulators
]


def _hopper() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


@pytest.mark.skipif(not _hopper(), reason="the warpgroup-MMA GEMV runs on an sm_90 GPU only")
@pytest.mark.parametrize("kind,m,n,k,cfg", WGMMA_CASES)
def test_fp4_wgmma_matches_reference_and_mma_kernel(kind, m, n, k, cfg):
    """The warpgroup-MMA GEMV on the tile layout against the reference and the mma.sync kernel on
    the same words; run twice, bit for bit the same (the split partials add in a fixed order, and
    the row blocks' counters are reset for the next launch)."""
    from qcert.kernels import layouts
    from qcert.kernels.triton import fp4_gemv_mma as fvm
    from qcert.kernels.triton import fp4_wgmma as fw

    w, x, bias = _inputs(m, n, k)
    x, bias = x.to(torch.bfloat16).cuda(), bias.to(torch.bfloat16).cuda()
    wp, ws, kind_id, g, want = _quantized(kind, x, w, bias)
    tw, ts = layouts.fp4_tiles(wp, ws)
    got = fw.fp4_wgmma(x, fvm.as_words(tw), ts, kind_id, g, bias, None, torch.float32, cfg)
    mma = fvm.fp4_gemv_mma(x, fvm.as_words(tw), ts, kind_id, g, bias, None, torch.float32, tiled=True)
    assert_close_rel(got, want, "fp32")
    assert_close_rel(got, mma, "fp32")
    assert torch.equal(got, fw.fp4_wgmma(x, fvm.as_words(tw), ts, kind_id, g, bias, None, torch.float32, cfg))


def test_fp4_wgmma_refuses_an_output_of_another_shape():
    """A wrong out= is a clear error before any launch (the kernel would write past it)."""
    from qcert.kernels.triton import fp4_gemv_mma as fvm
    from qcert.kernels.triton import fp4_wgmma as fw

    words, scales = torch.zeros(16, 16, dtype=torch.int32), torch.zeros(16, 4, dtype=torch.uint8)
    a = torch.zeros(12, 128, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"fp4_wgmma: out= must be \(12, 16\)"):
        fw.fp4_wgmma(a, fvm.as_words(words), scales, fv.E8M0, None, None, torch.empty(12, 15, dtype=torch.bfloat16),
                     torch.bfloat16, (1, 2, 4, None))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_tensor_core_gemvs_refuse_activations_they_cannot_take(dtype):
    """The warpgroup-MMA GEMV takes bf16 only and the mma.sync one bf16 or fp16: another dtype is a
    clear error before any launch, not its bits read as bf16."""
    from qcert.kernels.triton import fp4_gemv_mma as fvm
    from qcert.kernels.triton import fp4_wgmma as fw

    words, scales = fvm.as_words(torch.zeros(16, 64, dtype=torch.uint8)), torch.zeros(16, 4, dtype=torch.uint8)
    a = torch.zeros(12, 128, dtype=dtype)
    with pytest.raises(ValueError, match=r"fp4_wgmma: activations torch\.float(16|32): .* takes bf16"):
        fw.fp4_wgmma(a, words, scales, fv.E8M0, None, None, None, torch.float32, (1, 2, 4, None))
    if dtype == torch.float32:
        with pytest.raises(ValueError, match=r"fp4_gemv_mma: activations torch\.float32: .* takes bf16 or fp16"):
            fvm.fp4_gemv_mma(a, words, scales, fv.E8M0, None, None, None, torch.float32)


def test_tile_layout_refuses_shapes_it_cannot_hold():
    from qcert.kernels import layouts
    from qcert.kernels.triton import fp4_gemv_mma as fvm

    wp, ws = quantize_mxfp4(torch.randn(40, 256))
    with pytest.raises(ValueError, match=r"N=40 must be a multiple of 16"):
        layouts.fp4_tiles(wp, ws)
    wp, ws = quantize_mxfp4(torch.randn(32, 96))
    with pytest.raises(ValueError, match=r"K=96 of 128"):
        layouts.fp4_tiles(wp, ws)
    with pytest.raises(ValueError, match="tile layout takes one contiguous"):
        fvm.fp4_gemv_mma(torch.randn(1, 96, dtype=torch.bfloat16), fvm.as_words(wp), ws.view(torch.uint8), fv.E8M0,
                         None, None, None, torch.float32, tiled=True)


@pytest.mark.parametrize("kind", ["mxfp4", "nvfp4"])
def test_tile_layout_round_trips_and_places_each_byte_where_the_kernel_reads_it(kind):
    """layouts.fp4_tiles against the kernel's addressing written out per byte (block (tile, step) of
    1 KB, half, lane 4g + c, 16 bytes; scales per lane, rows g then g + 8; each word then under the
    word map, undone here by its own inverse), and its inverse."""
    from qcert.kernels import layouts

    n, k = 32, 256
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(5))
    wp, ws = quantize_mxfp4(w) if kind == "mxfp4" else quantize_nvfp4(w)[:2]
    wp, ws = wp.view(torch.uint8), ws.view(torch.uint8)
    tw, ts = layouts.fp4_tiles(wp, ws)
    per, steps = ws.shape[1] * 32 // k, k // 128
    flat_w, flat_s = layouts._map_words(tw, True).reshape(-1), ts.reshape(-1)
    for row in range(n):
        t, half, g = row // 16, (row % 16) // 8, row % 8
        for kb in range(k // 2):
            step, c = kb // 64, (kb % 64) // 16
            assert flat_w[((t * steps + step) * 2 + half) * 512 + (g * 4 + c) * 16 + kb % 16] == wp[row, kb]
        for j in range(ws.shape[1]):
            step, c, p = j // (4 * per), (j % (4 * per)) // per, j % per
            assert flat_s[(t * steps + step) * 64 * per + (g * 4 + c) * 2 * per + half * per + p] == ws[row, j]
    back_w, back_s = layouts.fp4_tiles_inverse(tw, ts)
    assert torch.equal(back_w, wp) and torch.equal(back_s, ws)


@pytest.mark.parametrize("shape,dtype,want", [
    ((5760, 360), torch.int32, 4),  # FP4 words at K = 2880: 1440-byte rows, 16-byte aligned
    ((5760, 1440), torch.uint8, 16),
    ((5760, 90), torch.uint8, 2),  # MXFP4 scales at K = 2880
    ((32, 5760, 180), torch.uint8, 4),  # every stride but the last counts: 5760 * 180 and 180
    ((300, 514), torch.int32, 2),  # NVFP4 words at K = 4112
    ((7, 3), torch.uint8, 1),
    ((4, 4), torch.float32, 4),  # at most 16 bytes' worth
])
def test_row_align_is_the_power_of_two_dividing_the_row_strides(shape, dtype, want):
    """The kernels rewrite their row strides as multiples of this (the compiler then knows rows start
    16-byte aligned); a value that does not divide a stride would change the addresses."""
    from qcert.kernels.triton._launch import row_align

    t = torch.empty(shape, dtype=dtype)
    assert row_align(t) == want
    assert all(st % want == 0 for st in t.stride()[:-1])


def test_no_kernel_adds_its_results_with_atomics():
    """A K split's partials are added by the tile's last program in split order (_helpers.split_sum;
    fp4_gemv_mma and fp4_wgmma their own way), never by atomic adds, whose order changes from run to
    run. The only atomic adds in the triton kernels are the tiles' counts (_helpers.split_last and
    fp4_wgmma's, in Gluon), acq_rel on purpose: they order the partials. Read from the kernel
    sources, so a new atomic add fails here."""
    import ast
    from pathlib import Path

    import qcert.kernels.triton as kernels

    calls = []
    for path in sorted(Path(kernels.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "atomic_add":
                sem = next((kw.value for kw in node.keywords if kw.arg == "sem"), None)
                calls.append((path.name, sem.value if isinstance(sem, ast.Constant) else None))
    assert sorted(calls) == [("_helpers.py", "acq_rel"), ("fp4_wgmma.py", "acq_rel")]


@pytest.mark.parametrize("n,k", [(8192, 8192), (4096, 8192), (2048, 8192), (1536, 7168), (576, 7168), (256, 7168),
                                 (7168, 2048), (16, 256), (2880, 2880)])
def test_gemv_config_splits_over_programs_only_with_two_tiles(n, k):
    """fp4_gemv_mma.config's measured rule: a split over programs only with two n8 tiles (M > 8), at
    most 4 ways and 8 warps a program there; never more warps over K than steps; two 16-row tiles a
    program at M > 8 unless that leaves a warp fewer than 4 steps."""
    from qcert.kernels.triton.fp4_gemv_mma import config

    for m in range(1, 17):
        rows, k_warps, chunks, split = config(m, n, k)
        assert chunks == 1 and (rows == 1 if m <= 8 else rows in (1, 2))
        assert split == 1 if m <= 8 else (split <= 4 and k_warps <= 8)
        assert k_warps * split <= max(1, k // 128)
        if m > 8 and rows == 1:
            assert split == 1 and 2 * k_warps * 4 > k // 128  # two tiles would leave each warp < 4 steps
        if split > 1:
            assert rows == 2  # short K takes one tile a program and never splits
    assert config(16, 8192, 8192) == (2, 8, 1, 1)  # enough blocks: no split
    assert config(16, 2048, 8192) == (2, 4, 1, 4)  # 64 blocks: 4 warps, split 4 (8 was slower)
    assert config(16, 7168, 2048) == (1, 4, 1, 1)  # short K: one tile, half the warps
    assert config(16, 4096, 2048) == (1, 4, 1, 1)  # ... and no split


# Builds fp4_wgmma's kernel for sm_90 and prints its PTX (argv: scale kind, warps). In a child process:
# triton 3.9's Gluon leaves IR objects that nanobind reports as leaks at interpreter exit.
_WGMMA_PTX = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.experimental.gluon._runtime import GluonASTSource
from qcert.kernels.triton import fp4_wgmma as fw

kind, warps = int(sys.argv[1]), int(sys.argv[2])
sig = dict.fromkeys(("a_ptr", "w_ptr", "count_ptr"), "*i32")
sig.update({"s_ptr": "*u8", "g_ptr": "*fp32", "bias_ptr": "*bf16", "c_ptr": "*bf16", "part_ptr": "*fp32"})
sig.update(dict.fromkeys(("M", "N", "stride_am", "stride_g", "stride_cm", "total_steps", "tile_words", "tile_scales"),
                         "i32"))
consts = {"SCALE_KIND": kind, "HAS_G": kind == 1, "HAS_BIAS": True, "SPLIT": 4, "STEPS": 2, "PREFETCH": 2,
          "WARPS": warps}
sig.update(dict.fromkeys(consts, "constexpr"))
src = GluonASTSource(fw._fp4_wgmma_kernel, sig, consts)
print(triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps}).asm["ptx"])
"""


@pytest.mark.parametrize("kind,warps", [("mxfp4", 4), ("nvfp4", 8)])
def test_fp4_wgmma_compiles_for_sm90_without_a_gpu(kind, warps):
    """The warpgroup-MMA GEMV built for sm_90 by this machine's triton (no GPU needed): the decoded
    words reach the wgmma operand without moving between threads (`assert_trivial`; a permute that
    crossed lanes fails to build), and the PTX has the warpgroup MMAs, the 4-byte cp.async staging and
    the one count atomic. A triton that lays the operand out otherwise fails here instead of sending it
    through shared memory every step. (Whether the numbers are right only a GPU says:
    test_fp4_wgmma_matches_reference_and_mma_kernel.)"""
    import re
    import subprocess
    import sys

    fw = pytest.importorskip("qcert.kernels.triton.fp4_wgmma")
    if not fw.available():
        pytest.skip(f"triton {fw.triton.__version__} has no Gluon")
    run = subprocess.run([sys.executable, "-c", _WGMMA_PTX, str(int(kind == "nvfp4")), str(warps)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    ptx = run.stdout
    assert ptx.count("wgmma.mma_async") == 8  # one k16 MMA per decoded word pair, 8 a 128-column step
    copies = re.findall(r"cp\.async\.ca\.shared\.global [^\n]*", ptx)
    assert copies and all(", 0x4," in c for c in copies), copies[:2]  # 4-byte copies: bf16 pairs
    assert ptx.count("atom.global.gpu.acq_rel.add") == 1  # the row block's count


def _sass_count(*args: str) -> str:
    """bench/sass_count.py's report: the tensor-core GEMV built for sm_90 by this machine's triton and
    ptxas, no GPU needed (it also runs check_lanes on the build)."""
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, str(root / "bench" / "sass_count.py"), *args], capture_output=True,
                         text=True, timeout=600, cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


@pytest.mark.parametrize("m,cfg,most", [(1, "1,16,1,1", 2048), (16, "2,8,1,1", 1024)])
def test_fp4_gemv_mma_sums_its_warps_in_little_shared_memory(m, cfg, most):
    """The end of the tensor-core GEMV, which every program runs once: the K warps' sums through
    shared memory one accumulator at a time. Summed as one [K_WARPS, 32, 4] block (37495b3 to
    e0d7c88) it took 4x the shared memory (8 / 4 KB) and the GEMV 1.8-2.3 / 5.4-6.2 us more at
    M = 1 / 16, N = K = 8192 on the H100, the loop unchanged (bench/results/h100-triton.md)."""
    import re

    pytest.importorskip("triton.backends.nvidia")
    out = _sass_count("--kind", "mxfp4", "--m", str(m), "--cfg", cfg, "--tiled")
    assert int(re.search(r"shared (\d+) bytes", out).group(1)) <= most, out


@pytest.mark.parametrize("kind,m,cfg,layout", [("nvfp4", 16, "2,8,1,1", "--tiled"), ("mxfp4", 8, "1,8,1,1", "--words"),
                                                ("mxfp4", 13, "2,4,1,2", "--words")])
def test_fp4_gemv_mma_builds_fp16_activations_for_sm90_without_a_gpu(kind, m, cfg, layout):
    """fp16 activations' GEMV (hi and lo parts) as ptxas builds it for sm_90: twice the bf16 build's
    mmas per step (its numbers only a GPU checks: test_fp4_gemv_mma_takes_fp16_activations_exactly),
    and under the default register cap nothing spills (NVFP4's parts spilled at the bf16 tile cap, 96)."""
    import re

    pytest.importorskip("triton.backends.nvidia")
    bf16, f16 = (_sass_count("--kind", kind, "--m", str(m), "--cfg", cfg, layout, *extra) for extra in ((), ("--act", "fp16")))
    hmma = [int(re.search(r"HMMA (\d+)", out).group(1)) for out in (bf16, f16)]
    assert hmma[1] == 2 * hmma[0] > 0, hmma
    assert re.search(r"stack 0 bytes", f16), f16


def test_fp32_prefill_dot_builds_on_the_tensor_cores_without_a_gpu():
    """fp32 activations in the general kernel (dense prefill tiles, 128x128x64) as ptxas builds them
    for sm_90: two tf32 dots a step (_helpers.act_dot), twice fp16's one, and at most a few stack
    bytes (the step's own accumulator beside acc: 0-32 bytes with triton 3.6-3.9). The ieee fp32 dot
    it replaces built with no tensor-core op and 10 KB of stack (triton 3.6)."""
    import re

    pytest.importorskip("triton.backends.nvidia")
    f16, f32 = (_sass_count("--gemm", "128,128,64,8,3", "--kind", "mxfp4", "--tiled", "--act", act)
                for act in ("fp16", "fp32"))
    hgmma = [int(re.search(r"HGMMA (\d+)", out).group(1)) for out in (f16, f32)]
    assert hgmma[1] == 2 * hgmma[0] > 0, hgmma
    assert int(re.search(r"stack (\d+) bytes", f32).group(1)) <= 64, f32
