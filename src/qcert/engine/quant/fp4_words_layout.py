"""The FP4 word map (kernels/layouts.fp4_words) on MoE experts, as an in-place post-load transform.

Stacked MXFP4 and NVFP4 experts (w13 and w2) get it when the MoE backend that will run them consumes
it: triton_words, whose grouped GEMMs decode a mapped word in fewer instructions (docs/kernels.md),
or the torch_words stand-in when asked for. The map keeps every byte in its word, so the mapped
words go back into the SAME Parameters; weight updates write the plain layout into them and rerun
the transform (quant/methods.py). Forward keys on `layer.layout` (models/common.run_experts).
"""

from __future__ import annotations

from qcert.kernels import layouts

from ..layers import QLinear
from . import methods

NAME = "fp4_words"
OPS = {"mxfp4": "mxfp4_moe", "nvfp4": "nvfp4_moe"}


def applies(layer) -> bool:
    return (isinstance(layer, QLinear) and layer.stacked and layer.layout == "plain" and layer.scheme.format in OPS
            and layer.weight.shape[-1] % 4 == 0 and methods.backend_layout(layer, OPS[layer.scheme.format]) == NAME)


def _write_back(layer: QLinear, fn) -> None:
    """Map in place expert by expert, so the temporaries are one expert's bytes."""
    weight, scale = layer.weight.data, layer.weight_scale.data
    for e in range(weight.shape[0]):
        weight[e].copy_(fn(weight[e], scale[e])[0])  # the map leaves the scales as they are


def transform(layer: QLinear) -> list[dict]:
    _write_back(layer, layouts.fp4_words)
    layer.layout = NAME
    return [{"param": "weight", "transform": NAME, "in_place": True}]


def inverse(layer: QLinear) -> None:
    _write_back(layer, layouts.fp4_words_inverse)
    layer.layout = "plain"


methods.LAYOUTS[NAME] = (lambda m: applies(m), lambda m: transform(m), lambda m: inverse(m))
