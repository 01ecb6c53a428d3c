"""The MoE kernel is picked from the requested backend, not from the experts' layout flag: when the
experts could not take the TRT-LLM layout (shape) the trtllm kernel still runs on plain weights and
un-permutes them (garbage, or a shape error from deep inside the layout code)."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant import nvfp4_layout
from qcert.kernels import registry


def by_request(w13, w2, x, weights, ids):
    name = getattr(w13, "backend_requests", {}).get(nvfp4_layout.OP) or registry.REFERENCE
    fn = next(b.fn for b in registry.backends(nvfp4_layout.OP) if b.name == name)
    return fn(x, w13.weight, w13.weight_scale, nvfp4_layout.expert_global_scales(w13), w2.weight, w2.weight_scale,
              nvfp4_layout.expert_global_scales(w2), weights, ids)


MUTANT = Mutant(
    id="layouts/kernel-by-request-not-layout",
    description="MoE forward runs the requested layout kernel on experts that were never transformed",
    upstream="sglang#22204",
    kills=["layouts/unusable-layout-clear-error"],
    patches=[("qcert.engine.quant.nvfp4_layout", "moe_forward", by_request)],
)
