"""compressed-tensors FP8_DYNAMIC (`input_activations.dynamic: true`) read as weight-only: the
activations are never quantized per token, in the linears or the experts."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant import compressed_tensors

_activation = compressed_tensors.CompressedTensorsConfig._activation


def dynamic_as_weight_only(self, where, a):
    act = _activation(self, where, a)
    return None if act == "fp8_dynamic" else act


MUTANT = Mutant(
    id="moe/fp8-dynamic-weight-only",
    description="FP8_DYNAMIC activations ignored: layers run W8A16 instead of per-token W8A8",
    upstream="sglang#22204",
    kills=["moe-formats/activations-quantized-like-linears"],
    patches=[("qcert.engine.quant.compressed_tensors", "CompressedTensorsConfig._activation", dynamic_as_weight_only)],
)
