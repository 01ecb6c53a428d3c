"""Kernel benchmark (GPU only): each figure next to its roofline and a baseline measured in the same run.

  python bench/bench_kernels.py --out bench/results/<device>.md

- ceiling: device-to-device copy bandwidth (bytes read + written) and bf16 matmul TFLOP/s;
- MXFP4 / NVFP4 GEMV, N = K = 8192, M = 1..16: time, achieved bandwidth over weight+scale bytes,
  % of copy bandwidth, roofline time (bytes / copy bandwidth), and cuBLAS bf16 on the dequantized
  weights (the baseline a loader without a kernel falls back to);
- FP8 W8A8 GEMM at prefill sizes vs torch._scaled_mm (per-tensor scales) on the same operands;
- MXFP4 MoE timings next to the torch reference.
Times are triton.testing.do_bench medians (ms -> us). Speed is never asserted in tests.
"""

from __future__ import annotations

import argparse
import platform
import sys

import torch
import triton
from triton.testing import do_bench

from qcert.kernels import fp8 as f8
from qcert.kernels import mxfp4 as mx
from qcert.kernels import nvfp4 as nv
from qcert.kernels import ops as ref_ops
from qcert.kernels.triton import fp4_gemm as fg
from qcert.kernels.triton import ops as tops
from qcert.kernels.triton.fp8_gemm import fp8_gemm


def us(fn) -> float:
    return do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e3


def copy_bw() -> float:
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    t = us(lambda: b.copy_(a))
    return 2 * a.numel() / (t * 1e-6)


def bf16_tflops(n=4096) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    return 2 * n**3 / (us(lambda: a @ b) * 1e-6) / 1e12


def gemv_rows(kind: str, bw: float, ms=(1, 2, 4, 8, 16), n=8192, k=8192):
    torch.manual_seed(0)
    w = torch.randn(n, k, device="cuda")
    if kind == "mxfp4":
        wp, ws = mx.quantize_mxfp4(w)
        wdq = mx.dequantize_mxfp4(wp, ws, torch.bfloat16)
        nbytes = wp.numel() + ws.numel()
        run = lambda x: tops.mxfp4_linear(x, wp, ws)  # noqa: E731
        check = lambda x: ref_ops.mxfp4_linear(x, wp, ws)  # noqa: E731
    else:
        wp, bs, s2 = nv.quantize_nvfp4(w)
        wdq = nv.dequantize_nvfp4(wp, bs, s2, torch.bfloat16)
        nbytes = wp.numel() + bs.numel() + 4
        run = lambda x: tops.nvfp4_linear(x, wp, bs, s2)  # noqa: E731
        check = lambda x: ref_ops.nvfp4_linear(x, wp, bs, s2)  # noqa: E731
    del w
    rows = []
    for m in ms:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        err = float((run(x).float() - check(x).float()).norm() / check(x).float().norm())
        t = us(lambda: run(x))
        t_bf16 = us(lambda: x @ wdq.t())
        moved = nbytes + x.numel() * 2 + m * n * 2
        roof = moved / bw * 1e6
        rows.append((f"{kind} GEMV M={m} N=K={k}", t, f"{moved / (t * 1e-6) / 1e12:.2f} TB/s = {100 * roof / t:.0f}% of copy",
                     f"{roof:.1f} us", f"cuBLAS bf16 dequant {t_bf16:.1f} us ({t_bf16 / t:.2f}x)", f"{err:.1e}"))
    return rows


def gemv_sweep(bw: float, n=8192, k=8192):
    """Configs of the MXFP4 GEMV kernel, to see what limits it."""
    torch.manual_seed(0)
    wp, ws = mx.quantize_mxfp4(torch.randn(n, k, device="cuda"))
    out = []
    for m in (1, 16):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        for bn, bk, split, warps, stages in [(64, 256, 4, 4, 3), (64, 256, 1, 4, 3), (32, 256, 4, 4, 3),
                                             (128, 256, 2, 8, 3), (128, 128, 4, 4, 4), (64, 128, 4, 4, 4),
                                             (64, 128, 8, 4, 4), (128, 256, 4, 8, 4), (256, 128, 2, 8, 3),
                                             (32, 512, 4, 4, 3)]:
            cfg = (16, bn, bk, split, warps, stages)
            try:
                t = us(lambda: fg.fp4_gemm(x, wp, ws, fg.E8M0, config=cfg))
            except Exception as e:  # a config that does not compile or fit
                out.append((m, cfg, float("nan"), type(e).__name__))
                continue
            out.append((m, cfg, t, f"{(wp.numel() + ws.numel()) / (t * 1e-6) / 1e12:.2f} TB/s"))
    return out


def fp8_rows(shapes=((4096, 4096, 4096), (8192, 8192, 8192), (2048, 8192, 28672))):
    rows = []
    cfgs = [(128, 256, 128, 8, 8, 3), (128, 128, 128, 8, 4, 4), (128, 256, 128, 8, 8, 4), (256, 128, 128, 8, 8, 3),
            (128, 128, 128, 8, 8, 5)]
    for m, n, k in shapes:
        torch.manual_seed(0)
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        wq, ws = f8.quantize_fp8_per_tensor(torch.randn(n, k, device="cuda"))
        xs = (x.float().abs().max() / 448).reshape(())
        xq = f8.to_e4m3_saturating(x.float() / xs)
        one = torch.ones((), device="cuda")
        t_ref = us(lambda: torch._scaled_mm(xq, wq.t(), scale_a=xs, scale_b=ws.reshape(()), out_dtype=torch.bfloat16))
        best = None
        for cfg in cfgs:
            try:
                # GEMM alone on the same pre-quantized operands (input_scale=1 quantizes exactly)
                t = us(lambda: fp8_gemm(xq.to(torch.bfloat16), wq, ws, input_scale=one, config=cfg))
            except Exception:
                continue
            if best is None or t < best[0]:
                best = (t, cfg)
        t_full = us(lambda: tops.fp8_linear(x, wq, ws, input_scale=xs))
        ref = ref_ops.fp8_linear(x[:256], wq, ws, input_scale=xs)
        err = float((tops.fp8_linear(x[:256], wq, ws, input_scale=xs).float() - ref.float()).norm() / ref.float().norm())
        fl = 2 * m * n * k
        rows.append((f"fp8 W8A8 GEMM {m}x{n}x{k}", best[0],
                     f"{fl / (best[0] * 1e-6) / 1e12:.0f} TFLOP/s = {100 * t_ref / best[0]:.0f}% of _scaled_mm",
                     f"_scaled_mm {t_ref:.0f} us ({fl / (t_ref * 1e-6) / 1e12:.0f} TFLOP/s)",
                     f"with act-quant kernel {t_full:.0f} us; config {best[1]}", f"{err:.1e}"))
    return rows


def moe_rows(shapes=((16, 2880, 2880, 32, 4), (512, 2880, 2880, 32, 4))):
    rows = []
    for t, h, i, e, k in shapes:
        torch.manual_seed(0)
        w13p, w13s = mx.quantize_mxfp4(torch.randn(e, 2 * i, h, device="cuda"))
        w2p, w2s = mx.quantize_mxfp4(torch.randn(e, h, i, device="cuda") * 0.1)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        ids = torch.stack([torch.randperm(e, device="cuda")[:k] for _ in range(t)]).int()
        tw = torch.softmax(torch.randn(t, k, device="cuda"), -1)
        args = (x, w13p, w13s, w2p, w2s, tw, ids)
        got, ref = tops.mxfp4_moe(*args), ref_ops.mxfp4_moe(*args)
        err = float((got.float() - ref.float()).norm() / ref.float().norm())
        tt, tr = us(lambda: tops.mxfp4_moe(*args)), us(lambda: ref_ops.mxfp4_moe(*args))
        rows.append((f"mxfp4 MoE T={t} H={h} I={i} E={e} k={k}", tt, "", "", f"torch reference {tr:.0f} us", f"{err:.1e}"))
    return rows


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
             "| what | time (us, median) | achieved | roofline | baseline (same run) | rel. err vs ref |",
             "| --- | ---: | --- | --- | --- | --- |"]
    rows = gemv_rows("mxfp4", bw) + gemv_rows("nvfp4", bw) + fp8_rows() + moe_rows()
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]:.1f} | {r[2]} | {r[3]} | {r[4]} | {r[5]} |")
        print(lines[-1], flush=True)
    lines += ["", "MXFP4 GEMV kernel configs (BLOCK_M, BLOCK_N, BLOCK_K, split_k, warps, stages):", "",
              "| M | config | us | weight bandwidth |", "| --- | --- | ---: | --- |"]
    for m, cfg, t, note in gemv_sweep(bw):
        lines.append(f"| {m} | {cfg} | {t:.1f} | {note} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
