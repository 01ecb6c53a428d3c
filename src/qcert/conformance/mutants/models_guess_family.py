"""With no usable architectures or model_type, the first registered family is guessed."""

from qcert.conformance.mutants import Mutant
from qcert.engine import models

_find = models.find_family


def guess(config, origin="config.json"):
    try:
        return _find(config, origin)
    except models.CheckpointError:
        return models.families()[0]


MUTANT = Mutant(
    id="models/guess-family",
    description="an unidentifiable config is built as the first known family",
    upstream="qcert (bad input)",
    kills=["bad-input/missing-architectures"],
    patches=[("qcert.engine.plan", "find_family", guess)],
)
