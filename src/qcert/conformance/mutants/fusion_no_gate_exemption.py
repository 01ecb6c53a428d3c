"""Qwen exclusion rule without the `shared_expert_gate` exemption: the (always BF16) scalar gate's
exclude entry turns fusion off."""

from qcert.conformance.mutants import Mutant


def excludes(entry: str) -> bool:
    return "shared_expert" in entry and not entry.startswith("mtp.")


MUTANT = Mutant(
    id="fusion/qwen-no-gate-exemption",
    description="an exclude entry naming shared_expert_gate counts as excluding the shared expert",
    upstream="sglang#22948",
    kills=["fusion/qwen-decision-table", "fusion/qwen-property"],
    patches=[("qcert.engine.fusion", "excludes_shared_expert", excludes)],
)
