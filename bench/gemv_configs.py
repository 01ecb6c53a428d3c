"""The tensor-core GEMV's launch configs at given shapes (GPU only): fp4_gemv_mma.config's choice
next to other configs, each timed in a CUDA graph, outputs checked against the default's.

  python bench/gemv_configs.py --kind mxfp4 --m 16 --shapes 2048x8192,1536x7168
  python bench/gemv_configs.py --kind mxfp4 --moe 1,4,16   # the MoE decode's grouped launches

A config is (rows, k_warps, chunks, split_k) (fp4_gemv_mma.config's docstring). With --moe: the MoE
(E = 32, H = I = 2880, k = 4, weights in fp4_words) under every pair of k_warps for its two grouped
GEMMs (gate_up N = 5760, down N = 2880). What it measured: bench/results/h100-triton.md."""
import argparse
import sys

import torch

sys.path.insert(0, "bench")
from bench_kernels import _fp4_weights, _kind_and_g, _moe_inputs, _rel, _tiles, graph_us, layout_args, tops  # noqa: E402
from qcert.kernels.layouts import fp4_tiles_fit  # noqa: E402
from qcert.kernels.triton import fp4_gemv_mma as fvm  # noqa: E402
from qcert.kernels.triton._launch import device_facts  # noqa: E402

# candidates besides the default: one 16-row tile a program at M <= 8; above, two (sharing A's
# fragments) or one (more, smaller programs)
CANDIDATES = {1: [(1, 16, 1, 1), (1, 8, 1, 1), (1, 16, 1, 2), (1, 8, 1, 2), (1, 8, 1, 4)],
              2: [(2, 8, 1, 1), (2, 8, 1, 2), (2, 8, 1, 4), (2, 4, 1, 2), (2, 4, 1, 4), (2, 4, 1, 8), (2, 2, 1, 8),
                  (1, 8, 1, 1), (1, 4, 1, 1), (1, 4, 1, 2), (1, 4, 1, 4), (1, 2, 1, 8)]}


def _gemv(kind, x, t, cfg):
    """t: a weight set in the tile layout or, where the shape has no whole tiles, the plain one."""
    wp, ws, s2 = t
    kind_id, g = _kind_and_g(kind, wp, s2)
    tiled = fp4_tiles_fit(wp.shape[0], x.shape[1])
    return fvm.fp4_gemv_mma(x, fvm.as_words(wp), ws, kind_id, g, None, None, x.dtype, cfg, tiled=tiled)


def dense(kind: str, m: int, shapes) -> None:
    sms = device_facts(torch.device("cuda"))[1]
    for n, k in shapes:
        sets, _, _ = _fp4_weights(kind, n, k)
        tiles = [_tiles(s) if fp4_tiles_fit(n, k) else s for s in sets]
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        default = fvm.config(m, n, k, sms)
        want = _gemv(kind, x, tiles[0], default)
        times = {}
        for cfg in dict.fromkeys([default] + CANDIDATES[1] + (CANDIDATES[2] if m > 8 else [])):
            err = _rel(_gemv(kind, x, tiles[0], cfg), want)  # splits add in another order: not bit for bit
            times[cfg] = graph_us([lambda t=t: _gemv(kind, x, t, cfg) for t in tiles])
            if err > 1e-3:
                print(f"  {cfg}: output differs from the default's by {err:.1e}", flush=True)
        best = min(times, key=times.get)
        layout = "" if fp4_tiles_fit(n, k) else " (plain layout)"
        print(f"{kind} M={m} N={n} K={k}{layout}: default {default} {times[default]:.1f} us; "
              f"best {best} {times[best]:.1f} us; " + ", ".join(f"{c} {t:.1f}" for c, t in times.items()), flush=True)


def moe(kind: str, ts) -> None:
    real = fvm.config
    for t in ts:
        op, args, kw = _moe_inputs(kind, t, 2880, 2880, 32, 4)
        fn, wargs = getattr(tops, op), layout_args(op, "fp4_words", args)
        want = fn(*wargs, **kw, words=True)
        times = {}
        for k1 in (1, 2, 4, 8):
            for k2 in (1, 2, 4, 8):
                fvm.config = lambda m, n, k, sms=132, grouped=False, k1=k1, k2=k2: (
                    (1, k1 if n > 2880 else k2, 1, 1) if grouped else real(m, n, k, sms))
                try:  # the SiLU output is rounded to bf16 between the GEMMs: other sums, other last bits
                    err = _rel(fn(*wargs, **kw, words=True), want)
                    times[(k1, k2)] = graph_us([lambda: fn(*wargs, **kw, words=True)], repeat=2)
                finally:
                    fvm.config = real
                if err > 2e-2:
                    print(f"  warps ({k1}, {k2}): output differs from the default's by {err:.1e}", flush=True)
        default = (real(t, 5760, 2880, grouped=True)[1], real(t, 2880, 2880, grouped=True)[1])
        best = min(times, key=times.get)
        print(f"{kind} MoE T={t}: default warps {default} {times[default]:.1f} us; best {best} {times[best]:.1f} us; "
              + ", ".join(f"{a}{b}={v:.0f}" for (a, b), v in times.items()), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=("mxfp4", "nvfp4"), default="mxfp4")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--shapes", default="2048x8192,1536x7168,1024x8192,576x7168,256x7168,4096x8192,7168x2048,8192x8192",
                   help="NxK,... (the tile layout where N is a multiple of 16 and K of 128, else the plain one)")
    p.add_argument("--moe", help="T,...: the MoE decode's grouped launches instead")
    a = p.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")]
    odd = [f"{n}x{k}" for n, k in shapes if k % 32]
    if odd:
        p.error(f"--shapes {','.join(odd)}: K must be a multiple of 32 (one MXFP4 scale group)")
    if not torch.cuda.is_available():
        print("gemv_configs: needs a GPU", file=sys.stderr)
        return 2
    if a.moe:
        moe(a.kind, [int(v) for v in a.moe.split(",")])
    else:
        dense(a.kind, a.m, shapes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
