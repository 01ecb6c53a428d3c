"""Pre-#22543: `cuda:0` survives as the device string, so `device == "cuda"` checks (CUDA graphs,
warmup) silently turn off."""

from qcert.conformance.mutants import Mutant
from qcert.engine import args

_parse = args.parse_device  # the real parser, captured before patching


def parse_keeping_index(value):
    _, index = _parse(value)
    return value, index


MUTANT = Mutant(
    id="device/index-not-stripped",
    description="parse_device returns the whole 'cuda:0' string as the device type",
    upstream="sglang#22543",
    kills=["device/strip-index", "device/type-has-no-colon", "device/cuda-graphs-key-on-type"],
    patches=[("qcert.engine.args", "parse_device", parse_keeping_index)],
)
