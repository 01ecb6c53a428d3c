"""The aiter GEMM gets its activation scales padded as aiter expects but not shuffled: gemm_a4w4 reads
its A scales in the same shuffled order as the weights' (bpreshuffle), so every block but a few gets
another block's scale. Only a ROCm machine with aiter can show it (`kernels/rocm-aiter-matches-reference`)."""

import torch

from qcert.conformance.mutants import Mutant
from qcert.kernels.layouts import aiter_shuffle_scale


def padded_only(s: torch.Tensor, pad: bool = False) -> torch.Tensor:
    shuffled = aiter_shuffle_scale(s, pad=pad)  # for the padded shape and the pad bytes
    out = torch.full_like(shuffled.view(torch.uint8), 0x7F)
    out[..., : s.shape[-2], : s.shape[-1]] = s.view(torch.uint8)
    return out.view(shuffled.dtype)


MUTANT = Mutant(
    id="kernels/aiter-activation-scales-unshuffled",
    description="the aiter GEMM's activation scales are padded but not shuffled into aiter's order",
    upstream="class of bug: aiter layouts applied to one operand and not the other (sglang#22204)",
    kills=["kernels/rocm-aiter-matches-reference"],
    patches=[("qcert.kernels.aiter", "aiter_shuffle_scale", padded_only)],
)
