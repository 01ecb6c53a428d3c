"""The warpgroup-MMA GEMV's activations staged in plain column order instead of the order its decoded
weights come in (fp4_wgmma's docstring: k' = 32i + 8j + 2c + e holds column 32c + 8i + 2j + e). Every
sum then pairs weights with the wrong activations of the same 128-column step: finite, plausible
numbers. Emulated on the host: A's columns are moved so that the kernel's staging puts each one back
where it was."""

import torch

from qcert.conformance.mutants import Mutant
from qcert.kernels.triton import fp4_wgmma as _fw

_wgmma = _fw.fp4_wgmma


def _staged_plain(a: torch.Tensor) -> torch.Tensor:
    k = torch.arange(128)
    i, j, c, e = k // 32, k // 8 % 4, k // 2 % 4, k % 2
    inverse = torch.empty(128, dtype=torch.long)
    inverse[32 * c + 8 * i + 2 * j + e] = k  # the column the staging puts at k' comes from position k'
    m, kk = a.shape
    return a.reshape(m, kk // 128, 128)[..., inverse.to(a.device)].reshape(m, kk)


def fp4_wgmma(a, *args, **kwargs):
    return _wgmma(_staged_plain(a), *args, **kwargs)


MUTANT = Mutant(
    id="kernels/wgmma-activations-unpermuted",
    description="the warpgroup-MMA GEMV stages the activations in plain column order, not its operand's",
    upstream="class of bug: an MMA operand laid out for another fragment order (layouts applied to one operand)",
    kills=["kernels/gpu-linear-matches-reference"],
    patches=[("qcert.kernels.triton.fp4_wgmma", "fp4_wgmma", fp4_wgmma)],
)
