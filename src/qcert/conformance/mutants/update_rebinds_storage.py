"""A weight update that lands in new tensors (rebinding `.data`) instead of the existing storages:
the values are right, but anything holding the old storage (CUDA graphs, kernel handles, a trainer's
shared buffers) keeps reading stale weights (sglang#22204's class of bug)."""

from qcert.conformance.mutants import Mutant
from qcert.engine.loader import LoadedModel

_write = LoadedModel._write_update


def write_then_rebind(self, new, jobs):
    _write(self, new, jobs)
    for p in self.model.parameters():
        p.data = p.data.clone()


MUTANT = Mutant(
    id="weight-update/rebinds-storage",
    description="update writes into fresh storages instead of the loaded parameters'",
    upstream="sglang#22204",
    kills=["certify/reload-same-checkpoint-is-identity", "certify/gpu-reload-same-checkpoint-is-identity"],
    patches=[("qcert.engine.loader", "LoadedModel._write_update", write_then_rebind)],
)
