"""A bare device type is pinned to index 0 (the current device at parse time) instead of staying
unindexed, so `cuda` and `cuda:0` become indistinguishable and later device selection is ignored."""

from qcert.conformance.mutants import Mutant
from qcert.engine import args

_parse = args.parse_device


def index_zero(value):
    device, index = _parse(value)
    return device, 0 if index is None else index


MUTANT = Mutant(
    id="device/bare-type-index-zero",
    description="a bare device type gets index 0",
    upstream="sglang#22543",
    kills=["device/bare-type"],
    patches=[("qcert.engine.args", "parse_device", index_zero)],
)
