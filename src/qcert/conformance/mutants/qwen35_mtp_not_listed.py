"""Qwen3.5 MTP tensors left out of the skip list (upstream's loader drops `mtp.` names silently): the
report has tensors no parameter claims and no reason for them."""

from qcert.conformance.mutants import Mutant
from qcert.engine.models import qwen_moe

MUTANT = Mutant(
    id="qwen3.5/mtp-not-listed",
    description="Qwen3.5 `mtp.` tensors are not declared skipped with a reason",
    upstream="sglang#22948",
    kills=["qwen-moe/every-tensor-accounted"],
    patches=[("qcert.engine.models.qwen_moe", "QWEN35_SKIPPED",
              {k: v for k, v in qwen_moe.QWEN35_SKIPPED.items() if k != "mtp."})],
)
