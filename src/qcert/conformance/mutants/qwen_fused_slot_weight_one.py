"""DeepSeek's fusion convention copied to Qwen: the fused shared-expert slot gets weight 1 and the
per-token sigmoid(shared_expert_gate(x)) is lost, so fused != unfused."""

import torch

from qcert.conformance.mutants import Mutant


def weight_one(shared_w):
    return torch.ones_like(shared_w)


MUTANT = Mutant(
    id="qwen/fused-slot-weight-one",
    description="with fusion on, the Qwen shared expert slot is weighted 1 instead of its gate",
    upstream="sglang#22948",
    kills=["fusion/fused-equals-unfused", "qwen-moe/shared-expert-gate-is-sigmoid"],
    patches=[("qcert.engine.models.qwen_moe", "fused_slot_weight", weight_one)],
)
