"""384 routed experts fuse whatever the quant method (a compressed-tensors Kimi-K2.5 scored GSM8K 0.000)."""

from qcert.conformance.mutants import Mutant

MUTANT = Mutant(
    id="fusion/384-any-quant-method",
    description="QUARK_ONLY is empty: 384 experts fuse without a quark config",
    upstream="sglang#25390",
    kills=["fusion/deepseek-decision-table", "fusion/kimi-k2.5-384-quark-only", "fusion/deepseek-property"],
    patches=[("qcert.engine.fusion", "QUARK_ONLY", frozenset())],
)
