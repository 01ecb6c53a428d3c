"""The Qwen shared expert weighted by the raw shared_expert_gate logit instead of its sigmoid."""

from qcert.conformance.mutants import Mutant


def raw_logit(logits):
    return logits.float()


MUTANT = Mutant(
    id="qwen/shared-gate-no-sigmoid",
    description="shared_expert_gate(x) multiplies the shared expert without the sigmoid",
    upstream="sglang#22948",
    kills=["qwen-moe/shared-expert-gate-is-sigmoid"],
    patches=[("qcert.engine.models.qwen_moe", "shared_gate", raw_logit)],
)
