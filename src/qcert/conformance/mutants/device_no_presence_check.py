"""A requested device type is never checked for presence: `cuda` on a CPU machine fails later, deep
inside the first allocation, instead of at argument time."""

from qcert.conformance.mutants import Mutant

MUTANT = Mutant(
    id="device/no-presence-check",
    description="normalize_args accepts a device torch cannot see",
    upstream="sglang#22543",
    kills=["device/absent-cuda"],
    patches=[("qcert.engine.args", "_check_available", lambda device, index: None)],
)
