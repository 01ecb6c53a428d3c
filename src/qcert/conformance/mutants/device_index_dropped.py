"""Upstream's fix drops the index with the colon: `cuda:1` -> `cuda`, and the model lands on
device 0."""

from qcert.conformance.mutants import Mutant
from qcert.engine import args

_parse = args.parse_device


def parse_dropping_index(value):
    device, _ = _parse(value)
    return device, None


MUTANT = Mutant(
    id="device/index-dropped",
    description="parse_device strips ':N' and forgets N",
    upstream="sglang#22543",
    kills=["device/strip-index", "device/torch-roundtrip"],
    patches=[("qcert.engine.args", "parse_device", parse_dropping_index)],
)
