"""Half fix: the index is stripped on the auto-detect path only; an explicit `cuda:1` reaches the
engine unchanged."""

from qcert.conformance.mutants import Mutant
from qcert.engine import args

_parse = args.parse_device


def normalize_stripping_only_detected(value, *, check_available=True):
    if value is None:
        return args.detect_device(), None
    _, index = _parse(value)
    return value, index


MUTANT = Mutant(
    id="device/strip-only-autodetect",
    description="normalize_device strips the index only for auto-detected devices",
    upstream="sglang#22543",
    kills=["device/strip-index", "device/cuda-graphs-key-on-type", "device/idempotent"],
    patches=[("qcert.engine.args", "normalize_device", normalize_stripping_only_detected)],
)
