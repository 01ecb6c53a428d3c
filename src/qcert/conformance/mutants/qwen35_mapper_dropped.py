"""Qwen3.5's `model.language_model.` -> `model.` name mapping dropped: the engine looks for its text
weights under `model.layers.*`, finds none, and the checkpoint's tensors go unclaimed."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant.base import NameMapper


def no_mapper(config):
    return NameMapper([])


MUTANT = Mutant(
    id="qwen3.5/mapper-dropped",
    description="QwenMoeFamily.mapper returns the identity mapping for Qwen3.5",
    upstream="sglang#22948",
    kills=["qwen-moe/every-tensor-accounted", "qwen-moe/mxfp4-forward-vs-twin",
           "exclude-remap/qwen-excluded-modules-unquantized", "exclude-remap/qwen-excluded-loads-checkpoint-bf16"],
    patches=[("qcert.engine.models.qwen_moe", "QwenMoeFamily.mapper", staticmethod(no_mapper))],
)
