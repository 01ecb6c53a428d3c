"""Pre-fix sglang#22204: the TRT-LLM shuffle stored its results in new side attributes
(`gemm1_weights_fp4_shuffled`, ...) and deleted the w13/w2 parameters the update writes into."""

import torch

from qcert.conformance.mutants import Mutant
from qcert.engine.quant import nvfp4_layout


def side_attribute_transform(layer):
    name, fwd, _ = nvfp4_layout._fns(layer)
    w, s = fwd(layer.weight.data, layer.weight_scale.data)
    g = "gemm1" if name.endswith("w13") else "gemm2"
    setattr(layer, f"{g}_weights_fp4_shuffled", torch.nn.Parameter(w, requires_grad=False))
    setattr(layer, f"{g}_scales_fp4_shuffled", torch.nn.Parameter(s, requires_grad=False))
    del layer._parameters["weight"], layer._parameters["weight_scale"]
    layer.layout = nvfp4_layout.NAME
    return [{"param": f"{g}_weights_fp4_shuffled", "transform": name, "in_place": False}]


def side_tensors(layer):
    g = "gemm1" if len(layer.rows) == 2 else "gemm2"
    return getattr(layer, f"{g}_weights_fp4_shuffled"), getattr(layer, f"{g}_scales_fp4_shuffled")


MUTANT = Mutant(
    id="layouts/side-attributes",
    description="layout transform stores shuffled copies in side attributes and deletes the parameters",
    upstream="sglang#22204",
    kills=["layouts/trtllm-in-place", "layouts/update-rewrites-layout", "weight-update/equals-fresh-load"],
    patches=[("qcert.engine.quant.nvfp4_layout", "transform", side_attribute_transform),
             ("qcert.engine.quant.nvfp4_layout", "kernel_tensors", side_tensors)],
)
