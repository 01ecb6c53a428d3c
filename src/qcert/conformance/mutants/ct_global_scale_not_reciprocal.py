"""compressed-tensors NVFP4 global scales read as if they were ModelOpt's (no reciprocal)."""

from dataclasses import replace

from qcert.conformance.mutants import Mutant
from qcert.engine.quant import compressed_tensors

_sources = compressed_tensors.CompressedTensorsConfig.sources


def sources_no_reciprocal(self, scheme, rows, k):
    return [replace(s, convert=None) for s in _sources(self, scheme, rows, k)]


MUTANT = Mutant(
    id="nvfp4-formats/ct-no-reciprocal",
    description="weight_global_scale / input_global_scale used without taking the reciprocal",
    upstream="sglang#22204",
    kills=["nvfp4-formats/modelopt-ct-equivalent"],
    patches=[("qcert.engine.quant.compressed_tensors", "CompressedTensorsConfig.sources", sources_no_reciprocal)],
)
