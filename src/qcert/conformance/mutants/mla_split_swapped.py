"""kv_b_proj split per head in the wrong order (values first), so the absorbed MLA path computes
attention with the wrong projections."""

from qcert.conformance.mutants import Mutant
from qcert.engine import hooks

_real = hooks.split_kv_b


def split_swapped(model):
    _real(model)
    for module in model.modules():
        if getattr(module, "w_kc", None) is not None:
            module.w_kc, module.w_vc = module.w_vc, module.w_kc


# The hook registry holds functions, so the mutant swaps the registry entry (run_hooks reads HOOKS).
MUTANT = Mutant(
    id="post-load/mla-split-swapped",
    description="w_kc and w_vc swapped when kv_b_proj is split",
    upstream="sglang#22543",
    kills=["post-load/forward-agrees-with-and-without-hook"],
    patches=[("qcert.engine.hooks", "HOOKS",
              [hooks.Hook(h.name, h.architectures, h.quant_methods, split_swapped if h.fn is _real else h.fn)
               for h in hooks.HOOKS])],
)
