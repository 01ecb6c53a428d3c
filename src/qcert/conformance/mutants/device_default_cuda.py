"""Auto-detection assumes CUDA (a serving engine's `device="cuda"` default) instead of asking torch."""

from qcert.conformance.mutants import Mutant

MUTANT = Mutant(
    id="device/default-cuda",
    description="device=None becomes cuda whether or not a GPU is visible",
    upstream="sglang#22543",
    kills=["device/autodetect"],
    patches=[("qcert.engine.args", "detect_device", lambda: "cuda")],
)
