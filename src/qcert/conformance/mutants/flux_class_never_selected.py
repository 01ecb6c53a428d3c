"""Pre-fix auto-detection: the ModelOpt FP8 diffusion config class exists but detection never picks
it, so a FLUX checkpoint's quantization_config is ignored and its FP8 tensors are read as if the
model were unquantized."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant.base import NoQuantConfig


def never_selected(qc):
    return NoQuantConfig()


MUTANT = Mutant(
    id="flux/class-never-selected",
    description="ModelOpt FP8 diffusion config never selected by auto-detection",
    upstream="sglang#20082",
    kills=["flux/auto-detect", "flux/certify-plan-load", "flux/fp8-forward", "flux/missing-scale",
           "flux/quant-algo"],
    patches=[("qcert.engine.quant.modelopt_diffusion", "parse_diffusion", never_selected)],
)
