"""Checkpoint tensors are not checked against the module's scheme: a wrong shape or a BF16 tensor
where MXFP4 is expected is only found (if at all) deep inside a copy."""

from qcert.conformance.mutants import Mutant


def any_shape(expected, found):
    return True


MUTANT = Mutant(
    id="plan/no-shape-check",
    description="tensor shapes are not compared with the scheme's",
    upstream="sglang#22543",
    kills=["bad-input/wrong-shape"],
    patches=[("qcert.engine.plan", "shape_ok", any_shape)],
)
