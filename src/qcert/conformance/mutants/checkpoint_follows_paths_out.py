"""Index entries are opened wherever they point, outside the checkpoint directory too."""

from qcert.conformance.mutants import Mutant


def anywhere(self, name):
    return (self.root / name).resolve()


MUTANT = Mutant(
    id="checkpoint/follows-paths-outside",
    description="files named by the index are not confined to the checkpoint directory",
    upstream="qcert (bad input)",
    kills=["bad-input/index-outside-checkpoint"],
    patches=[("qcert.engine.checkpoint", "Checkpoint._inside", anywhere)],
)
