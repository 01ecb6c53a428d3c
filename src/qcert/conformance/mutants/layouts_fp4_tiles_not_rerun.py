"""The GEMV tile layout applied once at load, but marked so that a weight update does not tile the
new bytes again (the transform keys on a flag that outlives the inverse): after an update the
kernel reads plain bytes as if they were tiles."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant import fp4_tiles_layout

_applies, _inverse = fp4_tiles_layout.applies, fp4_tiles_layout.inverse


def applies_once(layer):
    return _applies(layer) and not layer.__dict__.get("tiled_once")


def inverse_keeping_flag(layer):
    _inverse(layer)
    layer.__dict__["tiled_once"] = True


MUTANT = Mutant(
    id="layouts/fp4-tiles-not-rerun",
    description="a weight update leaves dense FP4 weights in the plain layout while the tile kernel reads them",
    upstream="class of bug: post-load repacks keyed on one-shot flags (sglang#22204)",
    kills=["layouts/fp4-tiles-in-place", "weight-update/gpu-equals-fresh-load"],
    patches=[("qcert.engine.quant.fp4_tiles_layout", "applies", applies_once),
             ("qcert.engine.quant.fp4_tiles_layout", "inverse", inverse_keeping_flag)],
)
