"""The tensor-core GEMV's split-K counters handed over dirty instead of zeroed, as a reused
workspace would be. Each row block's programs count themselves in, and the one that sees the count
reach split - 1 adds the partials and writes C; from a dirty count no program ever sees it, so C is
never written. Emulated on the host: the counters the GEMV gets hold a count no launch reaches."""

import torch

from qcert.conformance.mutants import Mutant


def split_counts(device: torch.device, blocks: int) -> torch.Tensor:
    return torch.full((max(blocks, 1024),), 1000, dtype=torch.int32, device=device)


MUTANT = Mutant(
    id="kernels/split-counts-dirty",
    description="the tensor-core GEMV's split-K counters are not zeroed before their first launch",
    upstream="class of bug: a split-K lock/semaphore workspace that must start zeroed, reused dirty",
    kills=["kernels/gpu-linear-matches-reference"],
    patches=[("qcert.kernels.triton.fp4_gemv_mma", "split_counts", split_counts)],
)
