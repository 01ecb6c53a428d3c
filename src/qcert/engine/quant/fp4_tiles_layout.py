"""The FP4 GEMV tile layout (kernels/layouts.fp4_tiles) as an in-place post-load transform.

Dense MXFP4/NVFP4 linears get it when the backend that will run them consumes it: triton_tiles
(bf16 or fp16 activations on an NVIDIA GPU, where the tensor-core GEMV reads each warp step's weights as
one 1 KB block instead of 64-byte runs of 16 rows; bench/results/h100-triton.md), or the
torch_tiles stand-in when asked for. Shapes without whole 16-row tiles and 128-column steps keep
the plain layout; the backend's own check refuses other activation dtypes and ROCm.
The permuted bytes go back into the SAME Parameters (same shape, dtype and storage), so weight
updates write the plain layout into them and rerun the transform (quant/methods.py).
"""

from __future__ import annotations

from qcert.kernels import layouts

from ..layers import QLinear
from . import methods

NAME = "fp4_tiles"
OPS = {"mxfp4": "mxfp4_linear", "nvfp4": "nvfp4_linear"}


def wants_layout(layer: QLinear) -> bool:
    """Whether the backend this linear will run with consumes the tile layout."""
    return methods.backend_layout(layer, OPS[layer.scheme.format]) == NAME


def applies(layer) -> bool:
    return (isinstance(layer, QLinear) and not layer.stacked and layer.layout == "plain" and layer.scheme.format in OPS
            and layouts.fp4_tiles_fit(layer.n, layer.k) and wants_layout(layer))


CHUNK_ROWS = 256  # whole 16-row tiles: a tile's bytes stay inside its rows' byte range


def _write_back(layer: QLinear, fn) -> None:
    """Permute in place a chunk of rows at a time, so the temporaries are CHUNK_ROWS rows' bytes,
    not the layer's (the tile layout never moves bytes across 16-row tiles)."""
    weight, scale = layer.weight.data, layer.weight_scale.data
    for r0 in range(0, weight.shape[0], CHUNK_ROWS):
        w, s = fn(weight[r0:r0 + CHUNK_ROWS], scale[r0:r0 + CHUNK_ROWS])
        weight[r0:r0 + CHUNK_ROWS].copy_(w)
        scale[r0:r0 + CHUNK_ROWS].copy_(s)


def transform(layer: QLinear) -> list[dict]:
    _write_back(layer, layouts.fp4_tiles)
    layer.layout = NAME
    return [{"param": p, "transform": NAME, "in_place": True} for p in ("weight", "weight_scale")]


def inverse(layer: QLinear) -> None:
    _write_back(layer, layouts.fp4_tiles_inverse)
    layer.layout = "plain"


methods.LAYOUTS[NAME] = (lambda m: applies(m), lambda m: transform(m), lambda m: inverse(m))
