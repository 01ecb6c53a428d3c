"""Upstream's fix as merged: `device.split(":")[0]` with no validation, so `cuda:abc` -> `cuda` and
`gpu` passes through."""

from qcert.conformance.mutants import Mutant


def split_without_checking(value):
    device, _, index = str(value).partition(":")
    return device, int(index) if index.isdigit() else None


MUTANT = Mutant(
    id="device/garbage-accepted",
    description="parse_device splits on ':' and accepts whatever is left",
    upstream="sglang#22543",
    kills=["device/reject-garbage", "device/type-has-no-colon"],
    patches=[("qcert.engine.args", "parse_device", split_without_checking)],
)
