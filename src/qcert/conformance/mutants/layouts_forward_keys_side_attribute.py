"""Half-fixed sglang#22204: parameters kept, but the kernel reads shuffled side copies and forward /
the transform key on `hasattr(layer, "gemm1_weights_fp4_shuffled")`, so after an update the kernel
keeps computing with the stale copies."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant import nvfp4_layout

SIDE = "gemm1_weights_fp4_shuffled"
_applies = nvfp4_layout.applies


def applies_unless_side(layer):
    return _applies(layer) and not hasattr(layer, SIDE)


def side_copy_transform(layer):
    name, fwd, _ = nvfp4_layout._fns(layer)
    layer.__dict__[SIDE] = fwd(layer.weight.data, layer.weight_scale.data)
    layer.layout = nvfp4_layout.NAME
    return [{"param": "weight", "transform": name, "in_place": True}]


def plain_again(layer):
    layer.layout = "plain"  # nothing to undo: the parameters were never permuted


def side_tensors(layer):
    return layer.__dict__[SIDE] if SIDE in layer.__dict__ else (layer.weight, layer.weight_scale)


MUTANT = Mutant(
    id="layouts/forward-keys-side-attribute",
    description="kernel reads shuffled side copies keyed on hasattr(side attribute); updates go stale",
    upstream="sglang#22204",
    kills=["layouts/trtllm-in-place", "layouts/update-rewrites-layout", "weight-update/equals-fresh-load"],
    patches=[("qcert.engine.quant.nvfp4_layout", "applies", applies_unless_side),
             ("qcert.engine.quant.nvfp4_layout", "transform", side_copy_transform),
             ("qcert.engine.quant.nvfp4_layout", "inverse", plain_again),
             ("qcert.engine.quant.nvfp4_layout", "kernel_tensors", side_tensors)],
)
