"""Pre-#22543: a fused module takes its first shard's scheme. With only Qwen3.5's q_proj excluded,
qkv_proj is taken as unquantized and the plan fails on k_proj's MXFP4 tensors, far from the cause;
qcert requires one clear error naming the fused module and the exclude entry."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant.base import QuantConfig

_resolve = QuantConfig.resolve


def first_shard_decides(self, module, packed):
    prefix, _, last = module.rpartition(".")
    shards = packed.get(last)
    return self._resolve_one(f"{prefix}.{shards[0]}") if shards else _resolve(self, module, packed)


MUTANT = Mutant(
    id="qwen/partial-qkv-first-shard-wins",
    description="a fused module's scheme is its first shard's; disagreeing shards are not reported",
    upstream="sglang#22543",
    kills=["exclude-remap/qwen-partial-qkv-exclusion-error"],
    patches=[("qcert.engine.quant.base", "QuantConfig.resolve", first_shard_decides)],
)
