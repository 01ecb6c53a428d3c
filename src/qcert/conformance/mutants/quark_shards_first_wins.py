"""Shards of a fused module that disagree are resolved silently (first shard wins) instead of an error."""

from qcert.conformance.mutants import Mutant


def first_shard(self, module, packed):
    prefix, _, last = module.rpartition(".")
    shards = packed.get(last)
    return self._resolve_one(f"{prefix}.{shards[0]}" if shards else module)


MUTANT = Mutant(
    id="quark/shards-first-wins",
    description="a fused module takes its first shard's scheme without checking the others",
    upstream="sglang#22543",
    kills=["exclude-remap/partial-shard-exclusion-error"],
    patches=[("qcert.engine.quant.base", "QuantConfig.resolve", first_shard)],
)
