"""Load-only probe of the FP4 GEMV (GPU only): the tensor-core kernel's grid and loads without its
decode and mma, in the plain checkpoint layout and in layouts.fp4_tiles, next to the real kernel.

  python bench/load_probe.py

The probe kernel issues exactly the GEMV's weight loads (plain: lane (g, c) reads 16 bytes of rows
g and g + 8, the 4 lanes of a row a 64-byte run; tiles: a warp step's 1 KB block), optionally its
scale loads (plain: a byte per row; tiles: the lane's 2 bytes in one load) and its activation loads
for M rows (four 16-byte loads per lane and step), and xor-sums them so they stay live. Same grid
as the GEMV at N = K = 8192 (512 programs of 8 warps interleaved over 128-column steps), 4 weight
copies rotated past L2, CUDA-graph replay, three interleaved rounds. If the probe takes as long as
the kernel, the loads (not the decode or the mma) set the kernel's pace.
"""
import sys

import torch
import triton
import triton.language as tl

sys.path.insert(0, "bench")
from bench_kernels import _fp4_weights, _linear, copy_bw, graph_us  # noqa: E402

from qcert.kernels.triton import fp4_gemv_mma as fvm  # noqa: E402


@triton.jit
def _probe(w_ptr, s_ptr, a_ptr, out_ptr, K, TILE: tl.constexpr, K_WARPS: tl.constexpr, SCALES: tl.constexpr,
           A_ROWS: tl.constexpr):
    pid_n = tl.program_id(0)
    t = tl.arange(0, 32 * K_WARPS)
    g, c, lane, warp = (t % 32) // 4, t % 4, t % 32, t // 32
    steps = K // 128
    acc = tl.zeros((32 * K_WARPS,), tl.int32)
    a_row = tl.minimum(g, A_ROWS - 1) if A_ROWS > 0 else g
    for it in range(steps // K_WARPS):
        step = it * K_WARPS + warp
        if TILE:
            base = (pid_n.to(tl.int64) * steps + step) * 256  # the step's 1 KB block, in words
            p0 = tl.max_contiguous(tl.multiple_of(base + lane * 4, 4), 1)
            wl = tl.load(w_ptr + p0[:, None] + tl.arange(0, 4)[None, :], eviction_policy="evict_first")
            wh = tl.load(w_ptr + p0[:, None] + 128 + tl.arange(0, 4)[None, :], eviction_policy="evict_first")
        else:
            r0 = (pid_n * 16 + g).to(tl.int64)
            col = tl.max_contiguous(tl.multiple_of(step * 16 + c * 4, 4), 1)
            wl = tl.load(w_ptr + (r0 * (K // 8) + col)[:, None] + tl.arange(0, 4)[None, :], eviction_policy="evict_first")
            wh = tl.load(w_ptr + ((r0 + 8) * (K // 8) + col)[:, None] + tl.arange(0, 4)[None, :],
                         eviction_policy="evict_first")
        acc ^= tl.xor_sum(wl, 1) + tl.xor_sum(wh, 1)
        if SCALES:
            if TILE:
                sb = (pid_n.to(tl.int64) * steps + step) * 64 + lane * 2
                acc += tl.sum(tl.load(s_ptr + sb[:, None] + tl.arange(0, 2)[None, :]).to(tl.int32), 1)
            else:
                sb = (pid_n * 16 + g).to(tl.int64) * (K // 32) + step * 4 + c
                acc += tl.load(s_ptr + sb).to(tl.int32) + tl.load(s_ptr + sb + 8 * (K // 32)).to(tl.int32)
        if A_ROWS > 0:
            aw = tl.multiple_of(step * 64 + c * 16, 4)
            for q in tl.static_range(4):
                acc ^= tl.xor_sum(tl.load(a_ptr + (a_row * (K // 2) + aw + q * 4)[:, None] + tl.arange(0, 4)[None, :]), 1)
    tl.store(out_ptr + pid_n * (32 * K_WARPS) + t, acc)


def main() -> int:
    if not torch.cuda.is_available():
        print("load_probe: needs a GPU", file=sys.stderr)
        return 2
    n = k = 8192
    bw = copy_bw()
    print(f"{torch.cuda.get_device_name()}: copy {bw / 1e12:.2f} TB/s", flush=True)
    sets, _, _ = _fp4_weights("mxfp4", n, k)
    words = [fvm.as_words(s[0]) for s in sets]
    scales = [s[1].view(torch.uint8) for s in sets]
    a16 = torch.randn(16, k, device="cuda", dtype=torch.bfloat16).view(torch.int32)
    out = torch.empty(n // 16 * 32 * 8, dtype=torch.int32, device="cuda")
    nbytes = n * k // 2 + n * k // 32

    def probe(tile, scales_on, a_rows):
        return [lambda w=w, s=s: _probe[(n // 16,)](w, s, a16, out, k, TILE=tile, K_WARPS=8, SCALES=scales_on,
                                                     A_ROWS=a_rows, num_warps=8) for w, s in zip(words, scales)]
    variants = {}
    for tile in (0, 1):
        for scales_on, a_rows in ((0, 0), (1, 0), (1, 1), (1, 8)):
            name = f"{'tiles' if tile else 'plain'} W{'+S' if scales_on else ''}{f'+A{a_rows}' if a_rows else ''}"
            variants[name] = probe(tile, scales_on, a_rows)
    for m in (1, 8, 16):
        xs = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in sets]
        variants[f"GEMV (plain) M={m}"] = [lambda x=x, s=s: _linear("mxfp4", x, s) for x, s in zip(xs, sets)]
    for rnd in range(3):
        for name, fns in variants.items():
            t = graph_us(fns)
            print(f"round {rnd} {name:22s} {t:6.1f} us  {nbytes / t / 1e6:5.2f} TB/s  "
                  f"{nbytes / t / 1e6 / (bw / 1e12) * 100:4.0f}% of copy", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
