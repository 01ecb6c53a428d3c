"""Pre-#25390 allow-list: only 256 routed experts fuse, so Kimi-K2.5 (384) never does."""

from qcert.conformance.mutants import Mutant
from qcert.engine import fusion

MUTANT = Mutant(
    id="fusion/allow-list-256-only",
    description="FUSION_ALLOW_LIST is {256} (upstream's `n_routed_experts == 256`)",
    upstream="sglang#25390",
    kills=["fusion/deepseek-decision-table", "fusion/kimi-k2.5-384-quark-only", "fusion/deepseek-property"],
    patches=[("qcert.engine.fusion", "FUSION_ALLOW_LIST", {256: fusion.FUSION_ALLOW_LIST[256]})],
)
