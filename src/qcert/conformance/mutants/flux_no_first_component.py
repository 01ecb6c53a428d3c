"""Pre-fix ignore matching: the glob is tried on the full module path only, so a bare first
component (`time_text_embed`, `norm_out`) no longer ignores the modules under it."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant import matching

MUTANT = Mutant(
    id="flux/no-first-component",
    description="ModelOpt diffusion ignore globs matched against the full path only",
    upstream="sglang#20082",
    kills=["flux/ignore-table", "flux/ignore-property"],
    patches=[("qcert.engine.quant.matching", "match_glob_or_first_component", matching.match_glob)],
)
