"""Pre-#25390 state sharing: the fused-module mapping is the model CLASS's dict, and a Kimi-K2.5 load
`update`s it with its own entries, so later loads in the process see another model's mapping."""

from qcert.conformance.mutants import Mutant
from qcert.engine.models.deepseek import KIMI, PACKED, DeepseekFamily

_SHARED = {k: list(v) for k, v in PACKED}
_build = DeepseekFamily.build


def shared_mapping():
    return _SHARED


def build_and_update(config, qc, args, ctx):
    if DeepseekFamily.architecture(config) == KIMI:
        ctx.packed.update({"qkv": ["q", "k", "v"]})  # the vision tower's fused attention
    return _build(config, qc, args, ctx)


MUTANT = Mutant(
    id="loader/shared-class-mapping",
    description="every load shares and mutates one class-level fused-module mapping",
    upstream="sglang#25390",
    kills=["exclude-remap/mappings-isolated-between-loads"],
    patches=[("qcert.engine.models.deepseek", "DeepseekFamily.packed_modules", shared_mapping),
             ("qcert.engine.models.deepseek", "DeepseekFamily.build", build_and_update)],
)
