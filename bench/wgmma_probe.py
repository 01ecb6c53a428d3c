"""The warpgroup-MMA GEMV (fp4_wgmma) on an sm_90 GPU: correctness against the reference and the
mma.sync kernel, then time against the mma.sync kernel (both on the tile layout, CUDA graphs).

  python bench/wgmma_probe.py             # both checks and the timing table
  python bench/wgmma_probe.py --quick     # N = K = 8192 only

Prints one line per check and per timed shape; what it measured: bench/results/h100-triton.md."""
import argparse
import sys
import traceback

import torch

sys.path.insert(0, "bench")
from bench_kernels import _fp4_weights, _kind_and_g, _ref, _rel, _tiles, graph_us  # noqa: E402
from qcert.kernels.triton import fp4_gemv_mma as fvm  # noqa: E402
from qcert.kernels.triton import fp4_wgmma as fw  # noqa: E402
from qcert.kernels.triton._launch import device_facts  # noqa: E402


def _wgmma(kind, x, t, cfg=None, bias=None):
    wp, ws, s2 = t
    kind_id, g = _kind_and_g(kind, wp, s2)
    return fw.fp4_wgmma(x, fvm.as_words(wp), ws, kind_id, g, bias, None, x.dtype, cfg)


def _mma(kind, x, t, bias=None):
    wp, ws, s2 = t
    kind_id, g = _kind_and_g(kind, wp, s2)
    return fvm.fp4_gemv_mma(x, fvm.as_words(wp), ws, kind_id, g, bias, None, x.dtype, tiled=True)


def _fits(cfg, k: int) -> bool:
    """Whether a config's split leaves every program a step and no more steps than shared memory holds."""
    steps = k // 128
    return cfg[0] <= steps and -(-steps // cfg[0]) <= 2 * fw.MAX_STEPS


def check(kind: str, shapes, ms=(9, 12, 16)) -> int:
    """Relative error against the reference (fp32 sums) and the mma.sync kernel, every split."""
    bad = 0
    for n, k in shapes:
        sets, _, _ = _fp4_weights(kind, n, k)
        plain, tiled = sets[0], _tiles(sets[0])
        for m in ms:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            bias = torch.randn(n, device="cuda", dtype=torch.bfloat16)
            want = _ref(kind, x, plain).float() + bias.float()
            mma = _mma(kind, x, tiled, bias)
            for cfg in dict.fromkeys([fw.config(m, n, k)] + [(s, 2, 8, 64) for s in (1, 2, 4, 8, 16)]
                                     + [(s, 1, 4, None) for s in (2, 8)]):
                if not _fits(cfg, k):
                    continue
                try:
                    got = _wgmma(kind, x, tiled, cfg, bias)
                    torch.cuda.synchronize()
                    e_ref, e_mma = _rel(got, want), _rel(got, mma)
                    again = _wgmma(kind, x, tiled, cfg, bias)  # counters reset, same sums
                    same = torch.equal(got, again)
                except Exception:  # noqa: BLE001 - a probe: report and go on
                    print(f"{kind} N={n} K={k} M={m} cfg={cfg}: FAILED")
                    traceback.print_exc(limit=3)
                    bad += 1
                    continue
                ok = e_ref < 1e-2 and e_mma < 1e-2 and same and torch.isfinite(got).all()
                bad += not ok
                print(f"{kind} N={n} K={k} M={m} cfg={cfg}: rel err vs ref {e_ref:.1e}, vs mma.sync {e_mma:.1e}, "
                      f"repeat identical {same}{'' if ok else '  <-- WRONG'}", flush=True)
    return bad


def timing(kind: str, shapes, ms=(16, 12, 9)) -> None:
    sms = device_facts(torch.device("cuda"))[1]
    for n, k in shapes:
        sets, wdq, _ = _fp4_weights(kind, n, k)
        tiles = [_tiles(s) for s in sets]
        for m in ms:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            t_mma = graph_us([lambda t=t: _mma(kind, x, t) for t in tiles])
            default = fw.config(m, n, k, sms)
            times = {}
            if n == k == 8192:
                cfgs = [(s, p, w, r) for s in (4, 8, 16) for p in (1, 2) for w in (4, 8) for r in (None, 64)]
            else:
                cfgs = [(8, 2, 4, None), (2, 2, 8, 64), (4, 2, 8, 64), (8, 2, 8, 64), (16, 2, 8, 64)]
            for cfg in dict.fromkeys([default] + cfgs):
                if not _fits(cfg, k):
                    continue
                times[cfg] = graph_us([lambda t=t, c=cfg: _wgmma(kind, x, t, c) for t in tiles])
            best = min(times, key=times.get)
            extra = ""
            if n == k == 8192 and m == 16:
                extra = f"; cuBLAS bf16 on dequantized weights {graph_us([lambda: x @ wdq.t()]):.1f} us"
            print(f"{kind} N={n} K={k} M={m}: mma.sync {t_mma:.1f} us; wgmma default {default} "
                  f"{times.get(default, float('nan')):.1f} us, best {best} {times[best]:.1f} us "
                  f"({t_mma / times[best]:.2f}x); " + ", ".join(f"{c} {v:.1f}" for c, v in times.items()) + extra,
                  flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="N = K = 8192 only")
    a = p.parse_args(argv)
    if not torch.cuda.is_available() or not fw.usable(torch.empty(16, 8, device="cuda", dtype=torch.bfloat16), 16):
        print("wgmma_probe: needs an sm_90 GPU and triton with Gluon", file=sys.stderr)
        return 2
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", fw.triton.__version__, flush=True)
    bad = 0
    for kind in ("mxfp4", "nvfp4"):
        bad += check(kind, [(8192, 8192)] if a.quick else [(8192, 8192), (1040, 1024), (4096, 2048)], (9, 16))
    big = [(8192, 8192)] if a.quick else [(8192, 8192), (4096, 8192), (2048, 8192), (7168, 2048), (16384, 4096),
                                          (1040, 1024)]
    for kind in ("mxfp4", "nvfp4"):
        timing(kind, big, (16,) if kind == "nvfp4" or a.quick else (16, 9))
    print(f"wgmma_probe: {bad} wrong or failed checks")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
