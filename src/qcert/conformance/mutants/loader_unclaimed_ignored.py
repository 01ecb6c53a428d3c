"""Tensors no module claims are silently ignored at load (the discipline mini-sglang enforces by
rejecting unexpected keys): a renamed or misplaced weight loads as if it were not there."""

from qcert.conformance.mutants import Mutant

MUTANT = Mutant(
    id="loader/unclaimed-ignored",
    description="load ignores checkpoint tensors no parameter claims",
    upstream="qcert (bad input)",
    kills=["bad-input/unclaimed-tensor-refused"],
    patches=[("qcert.engine.plan", "LoadPlan.unexpected", lambda self: [])],
)
