"""Parameters without a checkpoint tensor are left uninitialised instead of refusing the load."""

from qcert.conformance.mutants import Mutant


def tolerate(self):
    return None


MUTANT = Mutant(
    id="plan/missing-tolerated",
    description="load goes ahead with missing tensors",
    upstream="qcert (bad input)",
    kills=["bad-input/missing-scale-tensor"],
    patches=[("qcert.engine.plan", "LoadPlan.raise_if_incomplete", tolerate)],
)
