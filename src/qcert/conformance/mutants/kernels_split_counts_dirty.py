"""The split-K counters handed over dirty instead of zeroed, as a reused workspace would be. Each
output tile's programs count themselves in, and the one that sees the count reach split - 1 adds
the partials and writes C; from a dirty count no program ever sees it, so C is never written.
Emulated on the host: the counters every splitting kernel gets (_launch.split_counts, through
split_buffers) hold a count no launch reaches. The interpreted GEMV/GEMM split K on CPU, so CPU CI
kills it as the GPU cases do."""

import torch

from qcert.conformance.mutants import Mutant


def split_counts(device: torch.device, blocks: int) -> torch.Tensor:
    return torch.full((max(blocks, 1024),), 1000, dtype=torch.int32, device=device)


MUTANT = Mutant(
    id="kernels/split-counts-dirty",
    description="the split-K counters of the FP4 GEMV/GEMM kernels are not zeroed before their first launch",
    upstream="class of bug: a split-K lock/semaphore workspace that must start zeroed, reused dirty",
    kills=["kernels/mxfp4-linear-matches-reference", "kernels/nvfp4-linear-matches-reference",
           "kernels/gpu-linear-matches-reference"],
    patches=[("qcert.kernels.triton._launch", "split_counts", split_counts)],
)
