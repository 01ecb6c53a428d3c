"""The bf16 tile-layout GEMV at N = K = 8192 (default configs, CUDA graphs over 4 weight copies) with
the code of several source trees, each in its own process, on one GPU: whether a change of time between
two device calls came from the code or the machine (GPU only).

  python bench/gemv_ab.py .carry/old .      # a tree: a folder with src/ and bench/ (e.g. an older
                                             # commit's, `git worktree add`, copied into the ignored .carry)

Each tree's own bench_kernels.py times it (its weight set-up, its tile layout), M = 1 / 8 / 16, three
rounds each, so the spread shows too. What it measured: bench/results/h100-triton.md."""
import subprocess
import sys
from pathlib import Path

_ONE = '''
import sys
sys.path[:0] = [sys.argv[1] + "/src", sys.argv[1] + "/bench"]
import torch
from bench_kernels import _fp4_weights, _linear_tiles, _tiles, graph_us
for kind in ("mxfp4", "nvfp4"):
    sets, _, _ = _fp4_weights(kind, 8192, 8192)
    tiles = [_tiles(s) for s in sets]
    for m in (1, 8, 16):
        x = torch.randn(m, 8192, device="cuda", dtype=torch.bfloat16)
        ts = [graph_us([lambda s=s: _linear_tiles(kind, x, s) for s in tiles]) for _ in range(3)]
        print(f"| {sys.argv[1]} | {kind} | {m} | " + " / ".join(f"{t:.1f}" for t in ts) + " |", flush=True)
    del sets, tiles
'''


def main(trees) -> int:
    for tree in trees:
        if not (Path(tree, "src", "qcert").is_dir() and Path(tree, "bench", "bench_kernels.py").is_file()):
            print(f"gemv_ab: {tree!r} is no source tree (it needs src/qcert/ and bench/bench_kernels.py)", file=sys.stderr)
            return 2
    print("| tree | kind | M | us (3 rounds) |\n| --- | --- | ---: | --- |", flush=True)
    failed = 0
    for tree in trees:
        failed |= subprocess.run([sys.executable, "-c", _ONE, tree]).returncode
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["."]))
