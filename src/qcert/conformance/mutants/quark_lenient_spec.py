"""Quark weight specs are not validated: any dtype or group size is read as MXFP4."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant.scheme import Scheme


def lenient(self, where, spec):
    weight = (spec or {}).get("weight")
    return Scheme("mxfp4", 32) if weight else Scheme()


MUTANT = Mutant(
    id="quark/lenient-spec",
    description="unknown weight dtypes and group sizes are accepted as MXFP4",
    upstream="qcert (bad input)",
    kills=["bad-input/quark-bad-group-size", "bad-input/quark-unknown-dtype"],
    patches=[("qcert.engine.quant.quark", "QuarkConfig._spec", lenient)],
)
