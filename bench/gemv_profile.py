"""One FP4 GEMV configuration, launched a few times, for Nsight Compute (GPU only):

  ncu --kernel-name regex:fp4_gemv --launch-skip 2 --launch-count 1 --section SpeedOfLight \
      --section WarpStateStats --section MemoryWorkloadAnalysis \
      python3 bench/gemv_profile.py --kind mxfp4 --m 1 --cfg 1,8,2,1

N = K = 8192 as in bench_kernels.py; --cfg is (rows, k_warps, chunks, split_k) for the tensor-core kernel or,
with --no-mma, (BLOCK_N, BLOCK_K, split_k, num_warps, num_stages), with --wgmma (split, prefetch, warps,
max_regs; 0: no cap) for the warpgroup-MMA one (tile layout); default: the kernel's own choice."""
import argparse
import sys

import torch

sys.path.insert(0, "bench")
from bench_kernels import _fp4_weights, _linear, _linear_tiles, _tiles, gemv_cfg  # noqa: E402

N = K = 8192


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=("mxfp4", "nvfp4"), default="mxfp4")
    p.add_argument("--m", type=int, default=1)
    p.add_argument("--cfg", type=gemv_cfg, help="rows,k_warps,chunks,split or, with --no-mma, BLOCK_N,BLOCK_K,split,warps,stages")
    p.add_argument("--no-mma", action="store_true", help="the CUDA-core (M = 1) / fp32 kernels instead")
    p.add_argument("--tiled", action="store_true", help="weights in layouts.fp4_tiles (the tensor-core kernel)")
    p.add_argument("--wgmma", action="store_true", help="the warpgroup-MMA GEMV (fp4_wgmma, tile layout, sm_90)")
    a = p.parse_args()
    if a.wgmma:
        from wgmma_probe import _wgmma

        cfg = None if a.cfg is None else (*a.cfg[:3], a.cfg[3] or None)
    sets, _, _ = _fp4_weights(a.kind, N, K)
    x = torch.randn(a.m, K, device="cuda", dtype=torch.bfloat16)
    for i in range(3):
        if a.wgmma:
            _wgmma(a.kind, x, _tiles(sets[i % len(sets)]), cfg)
        elif a.tiled:
            _linear_tiles(a.kind, x, _tiles(sets[i % len(sets)]), a.cfg)
        else:
            _linear(a.kind, x, sets[i % len(sets)], a.cfg, not a.no_mma)
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
