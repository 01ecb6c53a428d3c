"""NVFP4 W4A4 MoE that feeds its GEMMs the unscaled activation QDQ (code times block scale) but never
multiplies the activation global scale into the GEMMs' column scale: every expert output comes out
scaled by 1 / input_scale."""

from qcert.conformance.mutants import Mutant
from qcert.kernels.triton.act_quant import nvfp4_qdq


def unfolded(self, a, g):
    return nvfp4_qdq(a, self.s), g


MUTANT = Mutant(
    id="kernels/moe-nvfp4-act-scale-unfolded",
    description="NVFP4 W4A4 MoE takes the activations unscaled and drops their global scale",
    upstream="class of bug: a GEMM epilogue that applies the weight's global scale but not the activation's",
    kills=["kernels/nvfp4-moe-matches-reference", "kernels/gpu-moe-matches-reference"],
    patches=[("qcert.kernels.triton.moe", "Nvfp4Act.__call__", unfolded)],
)
