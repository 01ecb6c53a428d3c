"""Per-shard scalars of a fused module (q/k/v or gate/up global scales, input scales) all written into
shard 0's slot: the other shards keep whatever the storage held, so a fused module's shards no longer
carry the one global scale the checkpoint gives them."""

from qcert.conformance.mutants import Mutant
from qcert.engine import loader

_target = loader._target


def first_slot(params, job):
    if job.shard is not None and job.shard > 0:
        job = type(job)(job.tensor, job.param, job.source, job.expert, job.rows, 0)
    return _target(params, job)


MUTANT = Mutant(
    id="loader/shard-scalars-first-slot",
    description="per-shard scalars of fused modules all land in shard 0",
    upstream="sglang#22204",
    kills=["nvfp4-formats/fused-groups-share-global-scale"],
    patches=[("qcert.engine.loader", "_target", first_slot)],
)
