"""Triton backends offered for CPU tensors without TRITON_INTERPRET: a request succeeds at selection
and fails (or silently compiles for no device) at launch instead of naming the missing variable."""

from qcert.conformance.mutants import Mutant

MUTANT = Mutant(
    id="kernels/triton-on-cpu-ungated",
    description="the triton capability predicate ignores TRITON_INTERPRET on CPU",
    upstream="qcert (kernels)",
    kills=["kernels/triton-needs-interpret-on-cpu"],
    patches=[("qcert.kernels.triton._launch", "triton_interpret_enabled", lambda: True)],
)
