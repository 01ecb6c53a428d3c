"""NVIDIA ModelOpt FP8 for diffusion transformers (FLUX), sglang#20082; UPSTREAM.md section 6.

The config is the transformer's `config.json` `quantization_config`: `quant_method: "modelopt"`,
`quant_algo: "FP8"`, an `ignore` list of fnmatch globs. It is picked by `detect()` with no flag:
modelopt.py hands checkpoints of the "flux" family here.

- Ignore entries are tried against the full module path AND its first component (`proj_out` ignores
  only the top-level `proj_out`, `time_text_embed` ignores everything under it), case-sensitive.
- A module that is not ignored is FP8: e4m3 `weight` [N, K], per-tensor `weight_scale` and static
  `input_scale`, bias kept in bf16. Modules that are not quantization-aware (AdaLayerNorm linears)
  get the same scheme here; the plan dequantizes them at load as fp32(w) * weight_scale.
"""

from __future__ import annotations

from ..errors import QuantConfigError
from . import matching
from .base import NameMapper, QuantConfig, Resolution
from .matching import dedupe
from .scheme import UNQUANTIZED, Scheme

FP8_STATIC = Scheme("fp8", None, "fp8", strategy="tensor")
SUPPORTED_ALGOS = ("FP8",)


class ModelOptDiffusionFP8Config(QuantConfig):
    method = "modelopt"
    entries_field = "ignore"

    def __init__(self, raw: dict, origin: str = "config.json quantization_config"):
        super().__init__(raw, origin)
        algo = raw.get("quant_algo")
        if algo is None:
            raise QuantConfigError(f"{origin}: field 'quant_algo' is missing; ModelOpt diffusion checkpoints "
                                   f"need quant_algo one of {', '.join(map(repr, SUPPORTED_ALGOS))}")
        if algo not in SUPPORTED_ALGOS:
            raise QuantConfigError(f"{origin}: field 'quant_algo' is {algo!r}; qcert reads ModelOpt diffusion "
                                   f"checkpoints with quant_algo {', '.join(map(repr, SUPPORTED_ALGOS))}")
        self.algo = algo
        field = "ignore" if "ignore" in raw else "exclude_modules"
        entries = raw.get(field) or []
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise QuantConfigError(f"{origin}: field {field!r} must be a list of strings, found {entries!r}")
        self.entries_field = field
        self.entries = list(entries)

    def bind(self, mapper: NameMapper) -> None:
        # Diffusers names are the engine's names; globs are kept as written (no `language_model.` forms).
        self._forms = {e: [mapper.to_engine(e)] for e in self.entries}
        self.exclude_entries = dedupe([f for e in self.entries for f in self._forms[e]])
        self.matched = set()

    def _resolve_one(self, module: str) -> Resolution:
        # Looked up through the module at call time so a mutant can swap the matching rule.
        # Every matching entry counts as matched (unmatched = matches no module); the first one decides.
        match = matching.match_glob_or_first_component
        hits = [e for e in self.exclude_entries if match(e, module)]
        self.matched.update(hits)
        if hits:
            hit = hits[0]
            return Resolution(UNQUANTIZED, f"{self.entries_field} entry {hit!r}", excluded_by=hit)
        return Resolution(FP8_STATIC, f"quant_algo {self.algo!r}")

    def describe(self) -> dict:
        return {**super().describe(), "variant": "diffusion", "quant_algo": self.algo}


def parse_diffusion(qc: dict) -> ModelOptDiffusionFP8Config:
    return ModelOptDiffusionFP8Config(qc)
