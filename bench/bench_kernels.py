"""Kernel benchmark (GPU only): each figure next to its roofline and a baseline measured in the same run.

  python bench/bench_kernels.py --out bench/results/<device>.md

- ceiling: device-to-device copy bandwidth (bytes read + written) and bf16 matmul TFLOP/s;
- MXFP4 / NVFP4 GEMV, N = K = 8192, M = 1..16, weights in the tile layout the engine loads on NVIDIA
  GPUs: time, achieved bandwidth over weight+scale bytes, % of copy bandwidth, roofline time (bytes /
  copy bandwidth), the same kernel on the plain checkpoint layout, and cuBLAS bf16 on the dequantized
  weights (the baseline a loader without a kernel falls back to); and MXFP4 at N = 2048, K = 8192,
  a shape whose 16-row tiles do not fill the SMs (M = 16 splits K over programs);
- FP8 W8A8 GEMM at prefill sizes vs torch._scaled_mm (per-tensor scales) on the same operands;
- fp16 and fp32 activations: the GEMV and the MXFP4 prefill GEMM against bf16 activations on the
  same kernels and against the ieee fp32 dots on the CUDA cores both took before;
- MXFP4 and NVFP4 W4A4 MoE timings (eager, and replayed in a CUDA graph) against the touched
  experts' bytes, the general grouped kernel at decode sizes, and the torch reference.
Times are triton.testing.do_bench medians (ms -> us). Speed is never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys

import torch
import triton
from triton.testing import do_bench

from qcert.kernels import fp8 as f8
from qcert.kernels import layouts
from qcert.kernels import mxfp4 as mx
from qcert.kernels import nvfp4 as nv
from qcert.kernels import ops as ref_ops
from qcert.kernels.triton import fp4_gemm as fg
from qcert.kernels.triton import fp4_gemv as fv
from qcert.kernels.triton import fp4_gemv_mma as fvm
from qcert.kernels.triton import moe as tmoe
from qcert.kernels.triton._launch import device_facts
from qcert.kernels.triton import ops as tops
from qcert.kernels.triton.fp8_gemm import fp8_gemm
from qcert.conformance.cases.test_kernels import layout_args  # weights into the layout a backend reads


def us(fn) -> float:
    return do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e3


def graph_us(fns, repeat: int = 5, replays: int = 20) -> float:
    """Per-call time of fns (each called once per round, `repeat` rounds) captured in one CUDA graph
    and replayed: launch overhead out, as engines run decode steps. Median over replays."""
    for f in fns:
        f()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for f in fns:  # warm the caching allocator on the capture stream
            f()
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        for _ in range(repeat):
            for f in fns:
                f()
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3 / (repeat * len(fns)))
    times.sort()
    return times[len(times) // 2]


def copy_bw() -> float:
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    t = us(lambda: b.copy_(a))
    return 2 * a.numel() / (t * 1e-6)


def bf16_tflops(n=4096) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    return 2 * n**3 / (us(lambda: a @ b) * 1e-6) / 1e12


COPIES = 4  # weight copies rotated through, so the 50 MB L2 cannot hold the weights between calls


def _fp4_weights(kind: str, n: int, k: int):
    """(COPIES packed weight sets, dequantized bf16 weight of the first, bytes per set)."""
    torch.manual_seed(0)
    sets = []
    for _ in range(COPIES):
        w = torch.randn(n, k, device="cuda") * torch.exp(torch.randn(n, 1, device="cuda"))
        if kind == "mxfp4":
            wp, ws = mx.quantize_mxfp4(w)
            sets.append((wp, ws, None))
        else:
            wp, bs, s2 = nv.quantize_nvfp4(w)
            sets.append((wp, bs, s2))
        del w
    wp, ws, s2 = sets[0]
    wdq = mx.dequantize_mxfp4(wp, ws, torch.bfloat16) if kind == "mxfp4" else nv.dequantize_nvfp4(wp, ws, s2, torch.bfloat16)
    return sets, wdq, wp.numel() + ws.numel() + (4 if s2 is not None else 0)


def _rotating(fn, sets):
    i = [0]

    def call():
        i[0] = (i[0] + 1) % len(sets)
        return fn(*sets[i[0]])
    return call


def _kind_and_g(kind, wp, s2):
    """The GEMV kernels' scale kind and per-row global scale (NVFP4) of a weight set."""
    return (fg.E8M0 if kind == "mxfp4" else fg.E4M3), (None if s2 is None else
                                                       s2.to(torch.float32).reshape(-1).expand(wp.shape[0]))


def _linear(kind, x, s, cfg=None, mma=None):
    wp, ws, s2 = s
    if cfg is not None or mma is not None:
        kind_id, g = _kind_and_g(kind, wp, s2)
        return fv.fp4_gemv(x, wp, ws, kind_id, g=g, cfg=cfg, mma=mma)
    return tops.mxfp4_linear(x, wp, ws) if kind == "mxfp4" else tops.nvfp4_linear(x, wp, ws, s2)


def _tiles(s):
    """A plain weight set -> the same weights in layouts.fp4_tiles (what the engine loads on NVIDIA)."""
    wp, ws, s2 = s
    return (*layouts.fp4_tiles(wp, ws.view(torch.uint8)), s2)


def _linear_tiles(kind, x, t, cfg=None, max_regs=None):
    """The triton_tiles backend (cfg: a tensor-core GEMV config, called directly; max_regs: its register cap)."""
    wp, ws, s2 = t
    if cfg is not None:
        kind_id, g = _kind_and_g(kind, wp, s2)
        return fvm.fp4_gemv_mma(x, fvm.as_words(wp), ws, kind_id, g, None, None, x.dtype, cfg, tiled=True,
                                max_regs=max_regs)
    return tops.mxfp4_linear_tiles(x, wp, ws) if kind == "mxfp4" else tops.nvfp4_linear_tiles(x, wp, ws, s2)


def _ref(kind, x, s):
    wp, ws, s2 = s
    return ref_ops.mxfp4_linear(x, wp, ws) if kind == "mxfp4" else ref_ops.nvfp4_linear(x, wp, ws, s2)


def _rel(a, b) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


# tensor-core kernel (fp4_gemv_mma): (rows, k_warps, chunks per step, split_k); (1, 1, c, s) is the
# third session's work split (K split over programs only; its partials now added in-kernel)
GEMV_CFGS = [(1, 8, 1, 1), (1, 8, 2, 1), (1, 4, 2, 1), (1, 16, 1, 1), (2, 8, 1, 1), (2, 8, 2, 1), (2, 4, 2, 1),
             (2, 16, 1, 1), (1, 1, 2, 8), (1, 1, 4, 4)]
# register caps tried at M = 16 besides the default (96 with two tiles): none (0), 128 and 80 (8-warp
# programs fit 2 per SM up to 128 registers, 3 at 80; 4-warp ones 5 / 6 at 96 / 80)
GEMV_REG_CAPS = (0, 128, 80)


def gemv_cfg(text: str) -> tuple[int, ...]:
    """argparse type for a GEMV config: "rows,k_warps,chunks,split_k" (the tensor-core kernel) or
    "BLOCK_N,BLOCK_K,split_k,warps,stages" (the other kernels, with --no-mma)."""
    try:
        cfg = tuple(int(v) for v in text.split(","))
    except ValueError:
        cfg = ()
    if len(cfg) not in (4, 5) or min(cfg) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected four (rows,k_warps,chunks,split_k) or five "
                                         "(BLOCK_N,BLOCK_K,split_k,warps,stages) positive integers")
    return cfg


def gemv_rows(kind: str, bw: float, ms=(1, 2, 4, 8, 16), n=8192, k=8192, configs=True):
    """The engine's GEMV on NVIDIA: weights in the tile layout (triton_tiles). Baselines in the same
    run: the same kernel on the plain checkpoint layout (triton) and cuBLAS bf16 on dequantized
    weights. The config sweep is the tile-layout kernel's."""
    sets, wdq, nbytes = _fp4_weights(kind, n, k)
    tiles = [_tiles(s) for s in sets]
    rows, sweep = [], []
    shape = f"N=K={k}" if n == k else f"N={n} K={k}"
    for m in (1, 16) if configs else ():  # config sweep: what limits the kernel, and the best config per M
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        best = None
        tries = [(cfg, None) for cfg in GEMV_CFGS]
        if m > 8:
            tries += [(cfg, cap) for cfg in GEMV_CFGS if cfg[0] == 2 and cfg[1] > 1 for cap in GEMV_REG_CAPS]
        for cfg, cap in tries:
            name = f"{cfg}" if cap is None else f"{cfg} max_regs {cap or 'none'}"
            try:
                err = _rel(_linear_tiles(kind, x, tiles[0], cfg, cap), _ref(kind, x, sets[0]))
                t = graph_us([lambda s=s: _linear_tiles(kind, x, s, cfg, cap) for s in tiles])
            except Exception as e:  # a config that does not compile or fit
                sweep.append((kind, m, name, float("nan"), f"{type(e).__name__}: {str(e)[:80]}"))
                print(kind, m, name, "FAILED", type(e).__name__, str(e)[:2000], flush=True)
                continue
            sweep.append((kind, m, name, t, f"{nbytes / (t * 1e-6) / 1e12:.2f} TB/s, err {err:.1e}"))
            print(kind, m, name, f"{t:.1f} us", f"err {err:.1e}", flush=True)
            if err < 1e-2 and (best is None or t < best[0]):
                best = (t, name)
        print(f"{kind} M={m}: best {best}", flush=True)
    for m in ms:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        try:
            err = _rel(_linear_tiles(kind, x, tiles[1]), _ref(kind, x, sets[1]))
            t = graph_us([lambda s=s: _linear_tiles(kind, x, s) for s in tiles])
            t_plain = graph_us([lambda s=s: _linear(kind, x, s) for s in sets])
            t_eager = us(_rotating(lambda *s: _linear_tiles(kind, x, s), tiles))
        except Exception as e:
            print(f"{kind} GEMV M={m} FAILED: {type(e).__name__}: {str(e)[:2000]}", flush=True)
            rows.append((f"{kind} GEMV M={m} {shape}", float("nan"), "FAILED", "", f"{type(e).__name__}", ""))
            continue
        t_bf16 = graph_us([lambda: x @ wdq.t()])
        moved = nbytes + x.numel() * 2 + m * n * 2
        roof = moved / bw * 1e6
        cfg = fvm.config(m, n, k, device_facts(x.device)[1])
        rows.append((f"{kind} GEMV M={m} {shape}", t, f"{moved / (t * 1e-6) / 1e12:.2f} TB/s = {100 * roof / t:.0f}% of copy",
                     f"{roof:.1f} us", f"cuBLAS bf16 dequant {t_bf16:.1f} us ({t_bf16 / t:.2f}x); plain layout "
                     f"{t_plain:.1f} us ({t_plain / t:.2f}x); eager (no graph) {t_eager:.1f} us; cfg {cfg}",
                     f"{err:.1e}"))
    return rows, sweep


@contextlib.contextmanager
def _ieee_dots():
    """The fp32 CUDA-core dot every non-bf16 dtype took before (_launch.dot_precision's baseline)."""
    saved = fg.dot_precision, fv.dot_precision
    fg.dot_precision = fv.dot_precision = lambda _x: "ieee"
    try:
        yield
    finally:
        fg.dot_precision, fv.dot_precision = saved


def act_dtype_rows(bw: float, n=8192, k=8192):
    """fp16 and fp32 activations (the engine serves fp16 and fp32 models too), baselines in the same
    run: bf16 activations on the same kernels, and the ieee fp32 dots on the CUDA cores both took
    before (with the tiles fp4_gemv.config gives that dot). fp16 decode: the tensor-core GEMV (tile
    layout) against fp4_gemv's kernels; fp32 decode: fp4_gemv with two tf32 dots; prefill: the
    general kernel's tf32 (fp16) or two tf32 (fp32) dots."""
    rows = []

    def row(name, t, moved, t_bf16, what_old, t_old, err):
        rows.append((name, t, f"{moved / (t * 1e-6) / 1e12:.2f} TB/s = {100 * moved / bw * 1e6 / t:.0f}% of copy",
                     f"{moved / bw * 1e6:.1f} us", f"bf16 activations {t_bf16:.1f} us ({t / t_bf16:.2f}x their time); "
                     f"{what_old} {t_old:.1f} us ({t_old / t:.1f}x)", f"{err:.1e}"))
        print(table_row(rows[-1]), flush=True)

    for kind in ("mxfp4", "nvfp4"):
        sets, wdq, nbytes = _fp4_weights(kind, n, k)
        tiles = [_tiles(s) for s in sets]
        for dtype in (torch.float16, torch.float32):
            name = str(dtype).removeprefix("torch.")
            for m in (1, 4, 8, 16):
                x = torch.randn(m, k, device="cuda", dtype=dtype)
                xb = x.to(torch.bfloat16)
                try:
                    if dtype == torch.float16:
                        err = _rel(_linear_tiles(kind, x, tiles[1]), _ref(kind, x.float(), sets[1]))
                        t = graph_us([lambda s=s: _linear_tiles(kind, x, s) for s in tiles])
                        t_bf16 = graph_us([lambda s=s: _linear_tiles(kind, xb, s) for s in tiles])
                    else:
                        err = _rel(_linear(kind, x, sets[1]), _ref(kind, x, sets[1]))
                        t = graph_us([lambda s=s: _linear(kind, x, s) for s in sets])
                        t_bf16 = graph_us([lambda s=s: _linear(kind, xb, s, mma=False) for s in sets])
                    with _ieee_dots():
                        t_old = graph_us([lambda s=s: _linear(kind, x, s, mma=False) for s in sets])
                except Exception as e:
                    print(f"{kind} {name} GEMV M={m} FAILED: {type(e).__name__}: {str(e)[:2000]}", flush=True)
                    continue
                moved = nbytes + x.numel() * x.element_size() + m * n * x.element_size()
                layout = "tile" if dtype == torch.float16 else "plain"
                row(f"{kind} GEMV {name} activations M={m} N=K={k} ({layout} layout)", t, moved, t_bf16,
                    "ieee fp32 dot, CUDA cores (before)", t_old, err)
        del sets, tiles, wdq
    sets, _, _ = _fp4_weights("mxfp4", n, k)
    for dtype in (torch.float16, torch.float32):
        for m in (512, 2048):
            x = torch.randn(m, k, device="cuda", dtype=dtype)
            xb = x.to(torch.bfloat16)
            err = _rel(_linear("mxfp4", x, sets[1]), _ref("mxfp4", x.float(), sets[1]))
            t = us(_rotating(lambda *s: _linear("mxfp4", x, s), sets))
            t_bf16 = us(_rotating(lambda *s: _linear("mxfp4", xb, s), sets))
            with _ieee_dots():
                t_old = us(_rotating(lambda *s: _linear("mxfp4", x, s), sets))
            fl = 2 * m * n * k
            rows.append((f"mxfp4 GEMM {str(dtype).removeprefix('torch.')} activations {m}x{n}x{k}", t,
                         f"{fl / (t * 1e-6) / 1e12:.0f} TFLOP/s", "", f"bf16 activations {t_bf16:.0f} us "
                         f"({t / t_bf16:.2f}x their time); ieee fp32 dot (before) {t_old:.0f} us ({t_old / t:.1f}x)",
                         f"{err:.1e}"))
            print(table_row(rows[-1]), flush=True)
    return rows


FP8_CFGS = [  # 8 entries: the persistent TMA kernel; 6: the plain tl.dot kernel
    (128, 256, 128, 8, 8, 3, False, False), (128, 256, 128, 8, 8, 4, False, False), (128, 256, 128, 8, 8, 3, True, False),
    (128, 256, 128, 8, 8, 3, False, True), (128, 128, 128, 8, 8, 4, False, False), (128, 128, 128, 8, 4, 4, False, False),
    (128, 128, 128, 8, 8, 5, True, False), (256, 128, 128, 8, 8, 3, False, False), (128, 256, 64, 8, 8, 4, False, False),
    (128, 128, 64, 8, 4, 5, False, False), (128, 256, 128, 16, 8, 3),
]


def fp8_rows(shapes=((4096, 4096, 4096), (8192, 8192, 8192), (2048, 8192, 28672))):
    rows = []
    for m, n, k in shapes:
        torch.manual_seed(0)
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        wq, ws = f8.quantize_fp8_per_tensor(torch.randn(n, k, device="cuda"))
        xs = (x.float().abs().max() / 448).reshape(())
        xq = f8.to_e4m3_saturating(x.float() / xs)
        ref = torch._scaled_mm(xq, wq.t(), scale_a=xs, scale_b=ws.reshape(()), out_dtype=torch.bfloat16)
        t_ref = us(lambda: torch._scaled_mm(xq, wq.t(), scale_a=xs, scale_b=ws.reshape(()), out_dtype=torch.bfloat16))
        best = None
        for cfg in FP8_CFGS:
            try:  # the GEMM alone on the same pre-quantized operands as _scaled_mm
                err = _rel(fp8_gemm(xq, wq, ws, input_scale=xs, config=cfg), ref)
                t = us(lambda: fp8_gemm(xq, wq, ws, input_scale=xs, config=cfg))
            except Exception as e:
                print(f"fp8 {m}x{n}x{k} {cfg}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
                continue
            print(f"fp8 {m}x{n}x{k} {cfg}: {t:.1f} us ({100 * t_ref / t:.0f}% of _scaled_mm {t_ref:.1f} us), err {err:.1e}",
                  flush=True)
            if err < 1e-2 and (best is None or t < best[0]):
                best = (t, cfg, err)
        t_full = us(lambda: tops.fp8_linear(x, wq, ws, input_scale=xs))
        t_default = us(lambda: fp8_gemm(xq, wq, ws, input_scale=xs))
        fl = 2 * m * n * k
        rows.append((f"fp8 W8A8 GEMM {m}x{n}x{k}", best[0],
                     f"{fl / (best[0] * 1e-6) / 1e12:.0f} TFLOP/s = {100 * t_ref / best[0]:.0f}% of _scaled_mm",
                     f"_scaled_mm {t_ref:.0f} us ({fl / (t_ref * 1e-6) / 1e12:.0f} TFLOP/s)",
                     f"default config {t_default:.0f} us ({100 * t_ref / t_default:.0f}%); bf16 in, act-quant kernel + GEMM "
                     f"{t_full:.0f} us; best config {best[1]}", f"{best[2]:.1e} vs _scaled_mm"))
    return rows


def _moe_inputs(kind: str, t, h, i, e, k):
    """(op, args, kwargs) of an FP4 MoE: kind "mxfp4" (W4A16) or "nvfp4-w4a4" (one activation
    scale per GEMM)."""
    torch.manual_seed(0)
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    ids = torch.stack([torch.randperm(e, device="cuda")[:k] for _ in range(t)]).int()
    tw = torch.softmax(torch.randn(t, k, device="cuda"), -1)
    w13, w2 = torch.randn(e, 2 * i, h, device="cuda"), torch.randn(e, h, i, device="cuda") * 0.1
    if kind == "mxfp4":
        return "mxfp4_moe", (x, *mx.quantize_mxfp4(w13), *mx.quantize_mxfp4(w2), tw, ids), {}
    q13 = [nv.quantize_nvfp4(w) for w in w13]
    q2 = [nv.quantize_nvfp4(w) for w in w2]
    a = [torch.stack([q[j] for q in q13]) for j in range(3)]
    b = [torch.stack([q[j] for q in q2]) for j in range(3)]
    act = dict(w13_input_scale=(x.float().abs().max() / 2688).reshape(1),
               w2_input_scale=torch.tensor([1.0], device="cuda"))
    return "nvfp4_moe", (x, *a, *b, tw, ids), act


def moe_rows(bw: float, shapes=(("mxfp4", 1, 2880, 2880, 32, 4), ("mxfp4", 16, 2880, 2880, 32, 4),
                                ("nvfp4-w4a4", 16, 2880, 2880, 32, 4), ("mxfp4", 512, 2880, 2880, 32, 4))):
    """FP4 MoE, eager and in a CUDA graph; roofline: the touched experts' weight and scale bytes
    over copy bandwidth. Decode sizes also time the general grouped kernel (what they ran before
    the tensor-core GEMV took them) in a graph."""
    return [_moe_row(bw, *shape) for shape in shapes]


# Prefill MoE tile configs for the sweep: (block_m, BLOCK_N, BLOCK_K, num_warps, num_stages); the
# first is what moe.py / fp4_gemm pick by themselves.
PREFILL_CONFIGS = ((64, 128, 64, 8, 3), (64, 128, 128, 8, 3), (64, 128, 128, 4, 3), (64, 64, 128, 4, 4),
                   (64, 256, 64, 8, 3), (64, 128, 256, 8, 2), (128, 128, 64, 8, 3), (128, 128, 128, 8, 3),
                   (128, 256, 64, 8, 3), (32, 128, 128, 4, 3))


def moe_sweep_rows(bw: float, kind="mxfp4", t=512, h=2880, i=2880, e=32, k=4):
    """Prefill MoE on the general grouped kernel under each PREFILL_CONFIGS entry, in a CUDA graph;
    achieved TFLOP/s over the T * k rows' work, error against the default config's output."""
    op, args, kw = _moe_inputs(kind, t, h, i, e, k)
    fn = getattr(tops, op)
    want = fn(*args, **kw)
    flops = 2 * t * k * h * 3 * i
    rows, real_config, real_block_m = [], fg._config, tmoe._block_m
    try:
        for bm, bn, bk, warps, stages in PREFILL_CONFIGS:
            fg._config = lambda *_: (bm, bn, bk, 1, warps, stages)
            tmoe._block_m = lambda *_: bm
            name = f"{kind} MoE T={t} H={h} I={i} E={e} k={k}, block_m={bm} BLOCK_N={bn} BLOCK_K={bk} warps={warps} stages={stages}"
            try:
                err = _rel(fn(*args, **kw), want)
                tg = graph_us([lambda: fn(*args, **kw)], repeat=2)
                base = rows[0][1] if rows else tg  # the first config is the default
                rows.append((name, tg, f"{flops / (tg * 1e-6) / 1e12:.0f} TFLOP/s", "",
                             f"default config {base:.0f} us ({base / tg:.2f}x)", f"{err:.1e} vs default"))
            except Exception as ex:  # e.g. out of shared memory: a row that says so
                rows.append((name, float("nan"), f"failed: {type(ex).__name__}: {str(ex)[:80]}", "", "", ""))
            print(table_row(rows[-1]), flush=True)  # a call cut short keeps the configs it timed
    finally:
        fg._config, tmoe._block_m = real_config, real_block_m
    return rows


def _moe_row(bw: float, kind: str, t, h, i, e, k):
    op, args, kw = _moe_inputs(kind, t, h, i, e, k)
    fn, ref = getattr(tops, op), getattr(ref_ops, op)
    got, want = fn(*args, **kw), ref(*args, **kw)
    err = float((got.float() - want.float()).norm() / want.float().norm())
    tt, tr = us(lambda: fn(*args, **kw)), us(lambda: ref(*args, **kw))
    tg = graph_us([lambda: fn(*args, **kw)], repeat=2)  # the routing has no host sync
    ids = args[-1]
    touched = torch.unique(ids).numel() * sum(v[0].numel() * v.element_size() for v in args[1:-2] if v.dim() == 3)
    wargs = layout_args(op, "fp4_words", args)  # the same weights in layouts.fp4_words, same run
    words_err = _rel(fn(*wargs, **kw, words=True), got)
    tw = graph_us([lambda: fn(*wargs, **kw, words=True)], repeat=2)
    base = f"weights in fp4_words {tw:.0f} us ({tg / tw:.2f}x, err vs plain {words_err:.1e}); "
    if t * k <= tmoe.DECODE_ROWS:
        real, tmoe._decode_gemv = tmoe._decode_gemv, lambda *a: False
        try:
            base += f"general grouped kernel in a graph {graph_us([lambda: fn(*args, **kw)], repeat=2):.0f} us; "
        finally:
            tmoe._decode_gemv = real
    return (f"{kind} MoE T={t} H={h} I={i} E={e} k={k}", tt,
            f"CUDA graph {tg:.0f} us = {touched / (tg * 1e-6) / 1e12:.2f} TB/s, "
            f"{100 * touched / (tg * 1e-6) / bw:.0f}% of copy", f"{touched / bw * 1e6:.0f} us",
            f"{base}torch reference {tr:.0f} us", f"{err:.1e}")


def table_row(r) -> str:
    return f"| {r[0]} | {r[1]:.1f} | {r[2]} | {r[3]} | {r[4]} | {r[5]} |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", help="write the Markdown table here")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_kernels: needs a GPU", file=sys.stderr)
        return 2
    props = torch.cuda.get_device_properties(0)
    head = (f"device: {props.name}, cc {props.major}.{props.minor}, {props.multi_processor_count} SMs; "
            f"torch {torch.__version__}, triton {triton.__version__}, python {platform.python_version()}")
    bw, tf = copy_bw(), bf16_tflops()
    lines = [f"# Kernel benchmark\n\n{head}\n", "command: `python bench/bench_kernels.py --out ...`\n",
             f"ceilings measured in this run: d2d copy {bw / 1e12:.2f} TB/s (read+write); bf16 matmul 4096^3 {tf:.0f} TFLOP/s\n",
             "| what | time (us, median; GEMV rows: CUDA-graph replay) | achieved | roofline | baseline (same run) | rel. err vs ref |",
             "| --- | ---: | --- | --- | --- | --- |"]
    # BENCH_ONLY: a comma list of gemv, fp8, acts, moe, moe_sweep (quick device calls; the last is not in
    # the default set); BENCH_SWEEP=0: no GEMV config sweep
    only = set((os.environ.get("BENCH_ONLY") or "gemv,fp8,acts,moe").split(","))
    sweep = os.environ.get("BENCH_SWEEP", "1") != "0"
    groups = [("gemv", lambda: gemv_rows("mxfp4", bw, configs=sweep)), ("gemv", lambda: gemv_rows("nvfp4", bw, configs=sweep)),
              # a shape with few rows: the default launch splits K over programs (partials added in-kernel)
              ("gemv", lambda: gemv_rows("mxfp4", bw, ms=(1, 8, 16), n=2048, configs=False)),
              ("fp8", lambda: (fp8_rows(), [])), ("acts", lambda: (act_dtype_rows(bw), [])), ("moe", lambda: (moe_rows(bw), [])),
              ("moe_sweep", lambda: (moe_sweep_rows(bw), []))]
    sweeps = []
    for name, run in groups:
        if name not in only:
            continue
        rows, group_sweep = run()
        sweeps += group_sweep
        for r in rows:  # printed as each group finishes, so a call cut short keeps what it measured
            lines.append(table_row(r))
            print(lines[-1], flush=True)
    if sweeps:  # only runs with the GEMV group and BENCH_SWEEP on have a config table
        lines += ["", "FP4 GEMV kernel configs (tensor-core kernel: rows, k_warps, chunks per step, split_k), N = K = 8192:",
                  "", "| format | M | config | us | weight bandwidth, rel. err |", "| --- | --- | --- | ---: | --- |"]
    for kind, m, cfg, t, note in sweeps:
        lines.append(f"| {kind} | {m} | {cfg} | {t:.1f} | {note} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
