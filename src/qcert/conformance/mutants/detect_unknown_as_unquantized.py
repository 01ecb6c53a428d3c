"""An unknown quant_method is silently treated as an unquantized checkpoint."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant import base

_detect = base.detect


def lenient_detect(config, hf_quant_config, family):
    try:
        return _detect(config, hf_quant_config, family)
    except base.QuantConfigError:
        return base.NoQuantConfig()


MUTANT = Mutant(
    id="detect/unknown-method-as-unquantized",
    description="detect() falls back to no quantization for an unknown quant_method",
    upstream="sglang#20082",
    kills=["bad-input/unknown-quant-method"],
    patches=[("qcert.engine.plan", "detect", lenient_detect)],
)
