"""Pre-#22543: the fused-module mapping handed to the Quark config has no `gate_up_proj`, so the fused
module is checked by its own name, never matches the checkpoint's gate_proj/up_proj exclude entries,
and a BF16 MLP is treated as MXFP4."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant.base import QuantConfig

_resolve = QuantConfig.resolve


def resolve_without_gate_up(self, module, packed):
    if self.method == "quark":
        packed = {k: v for k, v in packed.items() if k != "gate_up_proj"}
    return _resolve(self, module, packed)


MUTANT = Mutant(
    id="quark/no-gate-up-mapping",
    description="quark resolves gate_up_proj by its fused name instead of its shards",
    upstream="sglang#22543",
    kills=["exclude-remap/excluded-modules-unquantized", "exclude-remap/excluded-loads-checkpoint-bf16"],
    patches=[("qcert.engine.quant.base", "QuantConfig.resolve", resolve_without_gate_up)],
)
