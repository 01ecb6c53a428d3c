"""Qwen exclusion rule without the `mtp.` exemption: a BF16 shared expert in the MTP draft layer turns
fusion off for the main model."""

from qcert.conformance.mutants import Mutant


def excludes(entry: str) -> bool:
    return "shared_expert" in entry and "shared_expert_gate" not in entry


MUTANT = Mutant(
    id="fusion/qwen-no-mtp-exemption",
    description="an exclude entry starting with mtp. counts as excluding the shared expert",
    upstream="sglang#22948",
    kills=["fusion/qwen-decision-table", "fusion/qwen-property"],
    patches=[("qcert.engine.fusion", "excludes_shared_expert", excludes)],
)
