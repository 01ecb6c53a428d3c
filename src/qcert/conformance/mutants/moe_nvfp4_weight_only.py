"""NVFP4 MoE experts ignore their activation input scales and run weight-only (W4A16) while the
checkpoint's linears run W4A4: the experts compute something no W4A4 kernel computes."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant import methods, nvfp4_layout


def weight_only_moe(w13, w2, x, weights, ids):
    a, a_s = nvfp4_layout.kernel_tensors(w13)
    b, b_s = nvfp4_layout.kernel_tensors(w2)
    return methods.call_op(w13, nvfp4_layout.OP, x, a, a_s, w13.weight_scale_2.amax(-1), b, b_s,
                           w2.weight_scale_2.amax(-1), weights, ids)


MUTANT = Mutant(
    id="moe/nvfp4-experts-weight-only",
    description="NVFP4 experts drop w13/w2 input scales (W4A16 experts in a W4A4 checkpoint)",
    upstream="sglang#22204",
    kills=["moe-formats/activations-quantized-like-linears"],
    patches=[("qcert.engine.quant.nvfp4_layout", "moe_forward", weight_only_moe)],
)
