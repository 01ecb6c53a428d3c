"""A streaming update: each tensor is written as soon as it is read and checked afterwards, so a bad
tensor late in the checkpoint leaves a half-updated model."""

from qcert.conformance.mutants import Mutant
from qcert.engine import loader
from qcert.engine.checkpoint import Checkpoint
from qcert.engine.errors import UpdateError


def streaming_update(self, checkpoint, tensors=None):
    try:
        new = loader.build_plan(Checkpoint(checkpoint), self.args)
    except ValueError as e:
        raise UpdateError(f"update refused, weights unchanged: {e}") from None
    params = self.parameters()
    for job in new.jobs:
        try:
            loader._write(new.checkpoint, params, job)
            loader._validate(new.checkpoint, job)
        except Exception as e:
            raise UpdateError(f"update refused, weights unchanged: {e}") from None
    self._rerun_transforms()


MUTANT = Mutant(
    id="weight-update/write-before-validate",
    description="update writes each tensor before validating the checkpoint",
    upstream="sglang#22204",
    kills=["weight-update/corrupt-leaves-weights-unchanged"],
    patches=[("qcert.engine.loader", "LoadedModel.update_weights_from_disk", streaming_update)],
)
