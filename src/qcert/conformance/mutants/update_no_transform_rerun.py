"""update_weights_from_disk writes raw checkpoint tensors into parameters that are in a kernel layout
and never reruns the post-load transform (sglang#22204's reload path)."""

from qcert.conformance.mutants import Mutant
from qcert.engine import loader


def write_raw(self, new, jobs):
    params = self.parameters()
    for job in jobs:
        loader._write(new.checkpoint, params, job)


MUTANT = Mutant(
    id="weight-update/no-transform-rerun",
    description="update writes plain checkpoint tensors and skips the layout transform",
    upstream="sglang#22204",
    kills=["layouts/update-rewrites-layout", "weight-update/equals-fresh-load",
           "weight-update/gpu-equals-fresh-load", "certify/gpu-reload-same-checkpoint-is-identity"],
    patches=[("qcert.engine.loader", "LoadedModel._write_update", write_raw)],
)
