"""No quant check at all (pre-#22948 Qwen, and DeepSeek upstream): a BF16 shared expert is fused into
MXFP4 expert tensors and the load dies with a shape error."""

from qcert.conformance.mutants import Mutant

MUTANT = Mutant(
    id="fusion/no-quant-check",
    description="schemes are never compared and Qwen exclude entries are never consulted",
    upstream="sglang#22948",
    kills=["fusion/deepseek-decision-table", "fusion/qwen-decision-table", "fusion/bf16-shared-expert-loads-unfused",
           "fusion/deepseek-property", "fusion/qwen-property", "certify/fused-shared-expert-stored-alike"],
    patches=[("qcert.engine.fusion", "same_scheme", lambda routed, shared: True),
             ("qcert.engine.fusion", "excludes_shared_expert", lambda entry: False)],
)
