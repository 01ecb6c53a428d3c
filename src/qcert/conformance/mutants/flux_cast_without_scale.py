"""Pre-fix load-time conversion: an FP8 tensor going into a module that is not quantization-aware
(AdaLayerNorm's norm1.linear) is cast to the float dtype without applying its weight_scale."""

import torch

from qcert.conformance.mutants import Mutant
from qcert.engine import loader

_dequantize = loader.dequantize


def cast_without_scale(scheme, tensors):
    if scheme.format == "fp8":
        return tensors["weight"].to(torch.float32)
    return _dequantize(scheme, tensors)


MUTANT = Mutant(
    id="flux/cast-without-scale",
    description="FP8 weights of non-quantized modules cast to float without their weight_scale",
    upstream="sglang#20082",
    kills=["flux/adaln-dequant", "flux/fp8-forward"],
    patches=[("qcert.engine.loader", "dequantize", cast_without_scale)],
)
