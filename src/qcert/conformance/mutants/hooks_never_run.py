"""Over-gated hook: the DeepSeek-V3 MLA split never runs (the architecture compared with the wrong
string), so the absorbed-attention path is never set up."""

from qcert.conformance.mutants import Mutant
from qcert.engine import hooks

_gate = hooks.gate


def never(hook, architectures, quant_method):
    ok, why = _gate(hook, architectures and ["DeepseekV3ForCausalLm"], quant_method)
    return ok, why


MUTANT = Mutant(
    id="post-load/never-runs",
    description="the hook's architecture check compares against a misspelt name",
    upstream="sglang#22543",
    kills=["post-load/mla-hook-runs-for-deepseek-v3-quark"],
    patches=[("qcert.engine.hooks", "gate", never)],
)
