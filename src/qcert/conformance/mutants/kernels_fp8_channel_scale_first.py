"""FP8 GEMM reads a per-channel weight scale as per-tensor (row 0's scale for every row)."""

from qcert.conformance.mutants import Mutant
from qcert.kernels.triton import ops

_gemm = ops.fp8_gemm


def first_scale(x, w_fp8, w_scale, **kw):
    if hasattr(w_scale, "numel") and w_scale.numel() > 1:
        w_scale = w_scale.reshape(-1)[:1].reshape(())
    return _gemm(x, w_fp8, w_scale, **kw)


MUTANT = Mutant(
    id="kernels/fp8-channel-scale-as-tensor",
    description="per-channel FP8 weight scales collapsed to the first row's",
    upstream="class of bug: scale granularity mismatches in FP8 GEMMs",
    kills=["kernels/fp8-linear-matches-reference", "kernels/gpu-linear-matches-reference"],
    patches=[("qcert.kernels.triton.ops", "fp8_gemm", first_scale)],
)
