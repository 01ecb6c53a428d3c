"""The safetensors header is trusted without checking it against the file size: a truncated file
passes the plan and fails (or reads garbage) only when the data is touched."""

from qcert.conformance.mutants import Mutant
from qcert.engine import checkpoint

_read = checkpoint.read_safetensors_header


def trusting_header(path):
    try:
        return _read(path)
    except checkpoint.CheckpointError as e:
        if "ends at byte" not in str(e):  # only the data-size check is skipped
            raise
        import json
        import struct

        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        return {k: checkpoint.TensorMeta(k, v["dtype"], tuple(v["shape"]), path.name)
                for k, v in header.items() if k != "__metadata__"}


MUTANT = Mutant(
    id="checkpoint/no-size-check",
    description="tensor offsets are not checked against the file's size",
    upstream="qcert (bad input)",
    kills=["bad-input/truncated-safetensors"],
    patches=[("qcert.engine.checkpoint", "read_safetensors_header", trusting_header)],
)
