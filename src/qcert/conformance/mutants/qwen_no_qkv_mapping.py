"""Pre-#22543 for Qwen: the fused-module mapping handed to the quant config has no `qkv_proj`, so the
fused attention module is resolved by its own name, never matches the checkpoint's q/k/v_proj exclude
entries, and BF16 attention is taken for MXFP4."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant.base import QuantConfig

_resolve = QuantConfig.resolve


def resolve_without_qkv(self, module, packed):
    return _resolve(self, module, {k: v for k, v in packed.items() if k != "qkv_proj"})


MUTANT = Mutant(
    id="qwen/no-qkv-mapping",
    description="qkv_proj is resolved by its fused name instead of its q/k/v shards",
    upstream="sglang#22543",
    kills=["exclude-remap/qwen-excluded-modules-unquantized", "exclude-remap/qwen-excluded-loads-checkpoint-bf16"],
    patches=[("qcert.engine.quant.base", "QuantConfig.resolve", resolve_without_qkv)],
)
