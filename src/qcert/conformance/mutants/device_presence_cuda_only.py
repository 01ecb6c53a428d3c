"""The presence check only knows CUDA: every device type, cpu included, is refused without a GPU."""

import torch

from qcert.conformance.mutants import Mutant


def cuda_or_nothing(device, index):
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but torch sees no CUDA device")


MUTANT = Mutant(
    id="device/presence-check-cuda-only",
    description="the presence check refuses cpu on a machine without a GPU",
    upstream="sglang#22543",
    kills=["device/cpu-always-available"],
    patches=[("qcert.engine.args", "_check_available", cuda_or_nothing)],
)
