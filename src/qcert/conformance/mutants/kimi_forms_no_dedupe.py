"""`language_model.` forms expanded without dropping duplicates (the effective list repeats entries)."""

from qcert.conformance.mutants import Mutant

MUTANT = Mutant(
    id="kimi/forms-no-dedupe",
    description="both forms of every exclude entry kept, duplicates too",
    upstream="sglang#25390",
    kills=["exclude-remap/kimi-language-model-forms"],
    patches=[("qcert.engine.quant.base", "dedupe", list)],
)
