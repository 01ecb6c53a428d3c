"""NVFP4 experts whose gate/up global scales differ are run with one of them (here the max) instead of
being refused: the other shard is dequantized with the wrong scale (sglang warns and uses shard 0's)."""

from qcert.conformance.mutants import Mutant


def max_over_shards(layer):
    return layer.weight_scale_2.float().amax(-1)


MUTANT = Mutant(
    id="nvfp4/expert-global-scales-unchecked",
    description="MoE takes the max of an expert's gate/up global scales without checking they agree",
    upstream="sglang#22204",
    kills=["nvfp4-formats/expert-global-scales-disagree-refused"],
    patches=[("qcert.engine.loader", "check_expert_global_scales", lambda *a, **k: None),
             ("qcert.engine.quant.nvfp4_layout", "expert_global_scales", max_over_shards)],
)
