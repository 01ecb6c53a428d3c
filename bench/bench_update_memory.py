"""Peak extra memory of update_weights_from_disk, as a ratio of the model's parameter bytes.

CPU: tracemalloc does not see torch allocations, so the figure is the peak growth of anonymous RSS
(RssAnon, sampled by a thread) during the update over its value just before it. GPU: torch.cuda.max_memory_allocated.
Usage: python bench/bench_update_memory.py [--family llama] [--fmt modelopt-nvfp4] [--device cpu]
       [--hidden 1024 --inter 4096 --layers 4]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import torch

from qcert import fixtures
from qcert.engine import loader


def rss() -> int:
    """Anonymous resident memory: safetensors memory-maps the checkpoint, and those file-backed
    pages (evictable page cache) would otherwise count as the update's memory."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="llama")
    ap.add_argument("--fmt", default="bf16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--inter", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=4096)
    a = ap.parse_args()
    size = dict(hidden=a.hidden, inter=a.inter, layers=a.layers, vocab=a.vocab)
    old, new = fixtures.cached(a.family, a.fmt, **size), fixtures.cached(a.family, a.fmt, seed=1, **size)
    model = loader.load(old, device=a.device)
    params = model.parameters().values()
    model_bytes = sum(p.numel() * p.element_size() for p in params)
    largest = max(p.numel() * p.element_size() for p in params)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        model.update_weights_from_disk(new)
        torch.cuda.synchronize()
        extra, how = torch.cuda.max_memory_allocated() - base, "torch.cuda.max_memory_allocated"
    else:
        base, peak, done = rss(), [0], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss())
                time.sleep(0.0005)

        th = threading.Thread(target=sample)
        th.start()
        model.update_weights_from_disk(new)
        done.set()
        th.join()
        extra, how = max(peak[0], rss()) - base, "peak RssAnon growth (sampled)"
    print(f"{a.family} {a.fmt} on {a.device}: model {model_bytes / 2**20:.1f} MiB, largest tensor "
          f"{largest / 2**20:.1f} MiB; extra peak during update ({how}) {extra / 2**20:.1f} MiB = "
          f"{extra / model_bytes:.3f} x model bytes = {extra / largest:.2f} x largest tensor")


if __name__ == "__main__":
    main()
