"""NVIDIA ModelOpt (`quant_method: "modelopt"`). LLM checkpoints: FP8 / NVFP4 (this module);
diffusion transformers (FLUX): modelopt_diffusion.py (issue 6), picked by the model family.

LLMs carry the scheme in `hf_quant_config.json` (`quantization.quant_algo`, `exclude_modules`) and/or
in config.json `quantization_config` (`quant_algo`, `ignore`). When both exist hf_quant_config.json is
read (it is what ModelOpt writes first and what serving engines prefer). Exclude entries are fnmatch
globs; exact names are globs too. Tensor names are the defaults in base.py (`weight`, `weight_scale`,
`weight_scale_2`, `input_scale`).
"""

from __future__ import annotations

from ..errors import QuantConfigError
from .base import QuantConfig, Resolution, register
from .matching import first_match, match_glob
from .scheme import UNQUANTIZED, Scheme

# ModelOpt NVFP4 and FP8 LLM exports quantize activations too (static input_scale).
ALGOS = {
    "NVFP4": Scheme("nvfp4", 16, "nvfp4"),
    "FP8": Scheme("fp8", None, "fp8", strategy="tensor"),
}


class ModelOptConfig(QuantConfig):
    method = "modelopt"

    def __init__(self, qc: dict, hf_quant_config: dict | None):
        if hf_quant_config is not None:
            block = hf_quant_config.get("quantization")
            if not isinstance(block, dict):
                raise QuantConfigError(f"hf_quant_config.json: field 'quantization' must be an object, found {block!r}")
            origin, field, entries = "hf_quant_config.json", "exclude_modules", block.get("exclude_modules")
        else:
            block = qc
            origin, field, entries = "config.json quantization_config", "ignore", qc.get("ignore")
        super().__init__(block, origin)
        self.entries_field = field
        entries = [] if entries is None else entries
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise QuantConfigError(f"{origin}: field {field!r} must be a list of strings, found {entries!r}")
        self.entries = list(entries)
        self.algo = block.get("quant_algo")
        self.layers: dict[str, Scheme] = {}
        if self.algo == "MIXED_PRECISION":
            layers = block.get("quantized_layers")
            if not isinstance(layers, dict):
                raise QuantConfigError(f"{origin}: MIXED_PRECISION needs an object 'quantized_layers', found {layers!r}")
            self.layers = {name: self._scheme(spec.get("quant_algo") if isinstance(spec, dict) else None,
                                              f"quantized_layers[{name!r}].quant_algo")
                           for name, spec in layers.items()}
            self.scheme = None
        else:
            self.scheme = self._scheme(self.algo, "quant_algo")
        group = block.get("group_size")
        if self.algo == "NVFP4" and group not in (None, 16):
            raise QuantConfigError(f"{origin}: field 'group_size' is {group!r}; NVFP4 needs 16")

    def _scheme(self, algo, where: str) -> Scheme:
        if algo not in ALGOS:
            raise QuantConfigError(f"{self.origin}: field {where!r} is {algo!r}; supported: "
                                   f"{', '.join(ALGOS)}, MIXED_PRECISION")
        return ALGOS[algo]

    def _resolve_one(self, module: str) -> Resolution:
        hit = first_match(self.exclude_entries, module, match_glob)
        if hit is not None:
            self.matched.add(hit)
            return Resolution(UNQUANTIZED, f"{self.entries_field} entry {hit!r}", excluded_by=hit)
        if self.scheme is not None:
            return Resolution(self.scheme, f"quant_algo {self.algo!r}")
        for name in (module, "language_model." + module):
            if name in self.layers:
                return Resolution(self.layers[name], f"quantized_layers[{name!r}]")
        return Resolution(UNQUANTIZED, "not listed in quantized_layers (MIXED_PRECISION)")

    def describe(self) -> dict:
        return {**super().describe(), "quant_algo": self.algo}


@register("modelopt")
def parse(qc: dict, hf_quant_config, family: str):
    if family == "flux":
        from .modelopt_diffusion import parse_diffusion

        return parse_diffusion(qc)
    return ModelOptConfig(qc, hf_quant_config)
