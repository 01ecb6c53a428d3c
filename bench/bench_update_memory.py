"""Peak extra memory of update_weights_from_disk, as a ratio of the model's parameter bytes and of
its largest tensor.

CPU: tracemalloc does not see torch allocations, so the figure is the peak growth of anonymous RSS
(RssAnon, sampled every 0.2 ms by a thread) during the update over its value just before it. Each
measurement runs in a fresh process with glibc's mmap threshold pinned (MALLOC_MMAP_THRESHOLD_), so
every large block is its own mapping, returned to the OS when freed: RssAnon then follows live
allocations instead of arenas the allocator kept from earlier work. Checkpoint reads are memory-mapped
(file pages, not counted). GPU: torch.cuda.max_memory_allocated over memory_allocated before.

Usage: python bench/bench_update_memory.py                      # the table: dense + MoE, all formats
       python bench/bench_update_memory.py --family llama --fmt modelopt-nvfp4 [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

PINNED = {"MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
SIZES = {  # big enough that tensors dwarf interpreter noise, small enough to build in seconds
    "llama": dict(hidden=1024, inter=4096, layers=4, vocab=4096),
    "deepseek-v3": dict(hidden=1024, inter=2048, moe_inter=512, experts=16, layers=2, vocab=4096),
}
TABLE = [(f, m) for f in SIZES for m in ("bf16", "ct-mxfp4", "modelopt-nvfp4", "ct-nvfp4", "modelopt-fp8",
                                         "ct-fp8-dynamic")]


def rss() -> int:
    """Anonymous resident memory (file-backed mmap pages of the checkpoint are page cache)."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def measure(family: str, fmt: str, device: str) -> str:
    import torch

    from qcert import fixtures
    from qcert.engine import loader

    size = SIZES[family]
    old, new = fixtures.cached(family, fmt, **size), fixtures.cached(family, fmt, seed=1, **size)
    # MoE NVFP4: the TRT-LLM layout (CPU stand-in) so the update also undoes and reruns a layout
    kw = {"backends": {"nvfp4_moe": "torch_trtllm"}} if "nvfp4" in fmt and family != "llama" else {}
    model = loader.load(old, device=device, **kw)
    params = model.parameters().values()
    model_bytes = sum(p.numel() * p.element_size() for p in params)
    largest = max(p.numel() * p.element_size() for p in params)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        model.update_weights_from_disk(new)
        torch.cuda.synchronize()
        extra, how = torch.cuda.max_memory_allocated() - base, "cuda max_memory_allocated"
    else:
        base, peak, done = rss(), [0], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss())
                time.sleep(0.0002)

        th = threading.Thread(target=sample)
        th.start()
        model.update_weights_from_disk(new)
        done.set()
        th.join()
        extra, how = max(peak[0], rss()) - base, "RssAnon"
    layout = " (trtllm layout)" if kw else ""
    return (f"{family:12s} {fmt + layout:30s} {device:5s} model {model_bytes / 2**20:6.1f} MiB  largest tensor "
            f"{largest / 2**20:5.1f} MiB  extra peak ({how}) {extra / 2**20:5.2f} MiB = {extra / model_bytes:.3f} x "
            f"model = {extra / largest:.2f} x largest")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", choices=sorted(SIZES))
    ap.add_argument("--fmt")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if a.family and a.fmt:
        if any(os.environ.get(k) != v for k, v in PINNED.items()):  # re-exec with the allocator pinned
            os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **PINNED})
        print(measure(a.family, a.fmt, a.device), flush=True)
        return
    for family, fmt in TABLE:  # one fresh process per row
        subprocess.run([sys.executable, __file__, "--family", family, "--fmt", fmt, "--device", a.device],
                       env={**os.environ, **PINNED}, check=True)


if __name__ == "__main__":
    main()
