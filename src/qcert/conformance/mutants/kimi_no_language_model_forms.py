"""Pre-#25390: exclude entries used exactly as written (`language_model.`-prefixed for Kimi-K2.5) and
matched only against the engine's unprefixed module names: nothing in the text model is excluded."""

from qcert.conformance.mutants import Mutant


def bind_raw(self, mapper):
    self._forms = {e: [e] for e in self.entries}
    self.exclude_entries = list(self.entries)
    self.matched = set()


def engine_name_only(self, module):
    return [module]


MUTANT = Mutant(
    id="kimi/no-language-model-forms",
    description="exclude entries are neither mapped nor expanded to the engine's names",
    upstream="sglang#25390",
    kills=["exclude-remap/kimi-language-model-forms", "exclude-remap/excluded-modules-unquantized",
           "certify/exclude-entries-all-match", "certify/schemes-match-storage", "certify/loads-and-runs"],
    patches=[("qcert.engine.quant.base", "QuantConfig.bind", bind_raw),
             ("qcert.engine.quant.base", "QuantConfig.names", engine_name_only)],
)
