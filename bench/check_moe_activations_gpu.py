"""GPU check for the MoE activation paths (issue 5 follow-up): the triton nvfp4_moe W4A4 path and the
triton fp8_linear FP8_DYNAMIC path against the torch references, then CUDA loads of NVFP4 /
FP8_DYNAMIC MoE fixtures against the CPU forward, and the update's extra peak on the GPU.
Usage (on a CUDA machine): python bench/check_moe_activations_gpu.py"""

from __future__ import annotations

import subprocess
import sys

import torch

from qcert import fixtures
from qcert.engine import loader
from qcert.kernels import ops, registry
from qcert.kernels.fp8 import quantize_fp8_per_channel
from qcert.kernels.nvfp4 import quantize_nvfp4
from qcert.kernels.tolerances import rel_error


def kernels() -> None:
    g = torch.Generator().manual_seed(0)
    t, h, i, e, k = 37, 256, 128, 8, 2
    x = torch.randn(t, h, generator=g).to(torch.bfloat16)
    q13 = [quantize_nvfp4(torch.randn(2 * i, h, generator=g)) for _ in range(e)]
    q2 = [quantize_nvfp4(torch.randn(h, i, generator=g)) for _ in range(e)]
    st = lambda qs, j: torch.stack([q[j] for q in qs])  # noqa: E731
    ids = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(t)])
    tw = torch.rand(t, k, generator=g)
    args = (x, st(q13, 0), st(q13, 1), st(q13, 2), st(q2, 0), st(q2, 1), st(q2, 2), tw, ids)
    kw = dict(w13_input_scale=torch.tensor(4.0 / 2688), w2_input_scale=torch.tensor(0.5 / 2688))
    ref = ops.nvfp4_moe(*args, **kw)
    cuda = [a.cuda() for a in args]
    tri = registry.select("nvfp4_moe", registry.OpContext.from_tensor(cuda[0]), "triton").fn(
        *cuda, **{n: v.cuda() for n, v in kw.items()})
    print(f"triton nvfp4_moe W4A4 vs torch: rel {rel_error(tri.cpu(), ref):.2e}; "
          f"vs W4A16 {rel_error(ops.nvfp4_moe(*args), ref):.2e}")
    wq, s = quantize_fp8_per_channel(torch.randn(96, h, generator=g))
    ref = ops.fp8_linear(x, wq, s, act_dynamic=True)
    tri = registry.select("fp8_linear", registry.OpContext.from_tensor(x.cuda()), "triton").fn(
        x.cuda(), wq.cuda(), s.cuda(), act_dynamic=True)
    print(f"triton fp8_linear dynamic vs torch: rel {rel_error(tri.cpu(), ref):.2e}")


def models() -> None:
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    for family, fmt in [("deepseek-v3", "modelopt-nvfp4"), ("qwen3-moe", "ct-nvfp4"),
                        ("deepseek-v3", "ct-fp8-dynamic"), ("qwen3-moe", "ct-fp8-dynamic")]:
        path = fixtures.cached(family, fmt)
        cpu = loader.load(path)
        gpu = loader.load(path, device="cuda")
        err = rel_error(gpu.forward(ids.cuda()).float().cpu(), cpu.forward(ids).float())
        print(f"{family} {fmt}: cuda vs cpu logits rel {err:.2e}, backends {gpu.report()['backends']}")


if __name__ == "__main__":
    kernels()
    models()
    for family, fmt in [("llama", "modelopt-nvfp4"), ("deepseek-v3", "modelopt-nvfp4"), ("deepseek-v3", "ct-fp8-dynamic")]:
        subprocess.run([sys.executable, "bench/bench_update_memory.py", "--family", family, "--fmt", fmt,
                        "--device", "cuda"], check=False)
