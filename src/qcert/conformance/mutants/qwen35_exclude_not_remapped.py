"""Qwen3.5 exclude entries (`model.language_model.`-prefixed, as AMD's MXFP4 exports write them) used
as written against the engine's `model.*` names: nothing matches, the BF16 routers, shared-expert
gates and linear-attention projections are taken for MXFP4 and the load fails."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant.base import NameMapper, QuantConfig

_bind = QuantConfig.bind


def bind_unmapped(self, mapper):
    if ("model.language_model.", "model.") in mapper.prefixes:
        mapper = NameMapper([])  # the engine still maps tensor names; exclude entries are not mapped
    _bind(self, mapper)


MUTANT = Mutant(
    id="qwen3.5/exclude-not-remapped",
    description="the quant config binds Qwen3.5 exclude entries without the model.language_model. mapping",
    upstream="sglang#22543",
    kills=["qwen-moe/every-tensor-accounted", "qwen-moe/mxfp4-forward-vs-twin",
           "exclude-remap/qwen-excluded-modules-unquantized", "exclude-remap/qwen-excluded-loads-checkpoint-bf16"],
    patches=[("qcert.engine.quant.base", "QuantConfig.bind", bind_unmapped)],
)
