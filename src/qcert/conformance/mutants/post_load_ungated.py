"""Pre-#22543: the DeepSeek-V3 Quark MLA hook ran for every architecture on the MLA path (GLM-5 too)."""

from qcert.conformance.mutants import Mutant


def gate_on_method_only(hook, architectures, quant_method):
    ok = quant_method in hook.quant_methods
    return ok, f"quant method {quant_method!r}"


MUTANT = Mutant(
    id="post-load/ungated-architecture",
    description="post-load hooks gate on the quant method only",
    upstream="sglang#22543",
    kills=["post-load/mla-hook-never-for-glm-5", "post-load/empty-architectures-safe"],
    patches=[("qcert.engine.hooks", "gate", gate_on_method_only)],
)
