"""MTP layers neither loaded nor declared: their tensors are silently dropped, so a checkpoint whose
MTP weights are malformed or misnamed certifies clean."""

from qcert.conformance.mutants import Mutant


def undeclared(b, c, ctx):
    return None


MUTANT = Mutant(
    id="deepseek/mtp-undeclared",
    description="MTP layer tensors are not declared as deliberately unclaimed",
    upstream="qcert (certify)",
    kills=["certify/plan-complete"],
    patches=[("qcert.engine.models.deepseek", "declare_mtp", undeclared)],
)
