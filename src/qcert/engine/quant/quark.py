"""AMD Quark (`quant_method: "quark"`): MXFP4 (fp4, e8m0 scales, group 32) and FP8 weight specs.

Scheme priority: exclude > layer_quant_config (fnmatch globs) > layer_type_quant_config > global.
Exclude entries are exact names or `re:` regexes (see matching.py)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from ..errors import QuantConfigError
from .base import NameMapper, QuantConfig, Resolution, register
from . import matching
from .scheme import UNQUANTIZED, Scheme

LINEAR_TYPES = ("Linear", "nn.Linear", "torch.nn.Linear")


class QuarkConfig(QuantConfig):
    method = "quark"
    entries_field = "exclude"

    def __init__(self, raw: dict, origin: str = "config.json quantization_config"):
        super().__init__(raw, origin)
        exclude = raw.get("exclude", [])
        if not isinstance(exclude, list) or not all(isinstance(e, str) for e in exclude):
            raise QuantConfigError(f"{origin}: field 'exclude' must be a list of strings, found {exclude!r}")
        self.entries = list(exclude)
        self.global_scheme = self._spec("global_quant_config", raw.get("global_quant_config"))
        self.layer_schemes = {
            k: self._spec(f"layer_quant_config[{k!r}]", v) for k, v in self._table("layer_quant_config").items()
        }
        self.type_schemes = {
            k: self._spec(f"layer_type_quant_config[{k!r}]", v)
            for k, v in self._table("layer_type_quant_config").items()
        }
        self._layer_globs: dict[str, str] = {k: k for k in self.layer_schemes}

    def _table(self, name: str) -> dict:
        value = self.raw.get(name) or {}
        if not isinstance(value, dict):
            raise QuantConfigError(f"{self.origin}: field {name!r} must be an object, found {value!r}")
        return value

    def bind(self, mapper: NameMapper) -> None:
        super().bind(mapper)
        self._layer_globs = {mapper.to_engine(k): k for k in self.layer_schemes}

    # --- schema --------------------------------------------------------------------------------
    def _spec(self, where: str, spec) -> Scheme:
        if spec is None:
            raise QuantConfigError(f"{self.origin}: field {where!r} is missing")
        if not isinstance(spec, dict):
            raise QuantConfigError(f"{self.origin}: field {where!r} must be an object, found {spec!r}")
        weight = spec.get("weight")
        if weight is None:
            return UNQUANTIZED
        if isinstance(weight, list):  # Quark allows a list of specs; qcert reads single-spec weights
            if len(weight) != 1:
                raise QuantConfigError(f"{self.origin}: {where}.weight lists {len(weight)} specs; qcert supports one")
            weight = weight[0]
        dtype = weight.get("dtype")
        act = self._activation(where, spec.get("input_tensors"))
        if dtype == "fp4":
            for fld, want in (("qscheme", "per_group"), ("group_size", 32), ("scale_format", "e8m0")):
                if weight.get(fld) != want:
                    raise QuantConfigError(
                        f"{self.origin}: {where}.weight.{fld} is {weight.get(fld)!r}; MXFP4 needs {want!r}"
                    )
            rule = weight.get("scale_calculation_mode") or "even"
            if rule not in ("even", "floor"):
                raise QuantConfigError(f"{self.origin}: {where}.weight.scale_calculation_mode {rule!r} is not 'even' or 'floor'")
            return Scheme("mxfp4", 32, act, rule=rule)
        if dtype == "fp8_e4m3":
            qs = weight.get("qscheme")
            strategy = {"per_tensor": "tensor", "per_channel": "channel"}.get(qs)
            if strategy is None:
                raise QuantConfigError(f"{self.origin}: {where}.weight.qscheme {qs!r} is not supported for fp8_e4m3")
            return Scheme("fp8", None, act, strategy=strategy)
        raise QuantConfigError(
            f"{self.origin}: {where}.weight.dtype {dtype!r} is not supported (supported: 'fp4', 'fp8_e4m3')"
        )

    def _activation(self, where: str, spec) -> str | None:
        if spec is None:
            return None
        if isinstance(spec, list):
            spec = spec[0] if spec else None
            if spec is None:
                return None
        dtype = spec.get("dtype")
        if dtype == "fp4":
            if not spec.get("is_dynamic", True):
                raise QuantConfigError(f"{self.origin}: {where}.input_tensors: static fp4 activations are not supported")
            return "mxfp4"
        if dtype == "fp8_e4m3":
            return "fp8"
        raise QuantConfigError(f"{self.origin}: {where}.input_tensors.dtype {dtype!r} is not supported")

    # --- resolution ----------------------------------------------------------------------------
    def _resolve_one(self, module: str) -> Resolution:
        hit = self.excluded_by(module, matching.match_exact_or_regex)
        if hit is not None:
            return Resolution(UNQUANTIZED, f"exclude entry {hit!r}", excluded_by=hit)
        for glob, key in self._layer_globs.items():
            if fnmatchcase(module, glob):
                return Resolution(self.layer_schemes[key], f"layer_quant_config[{key!r}]")
        for t in LINEAR_TYPES:
            if t in self.type_schemes:
                return Resolution(self.type_schemes[t], f"layer_type_quant_config[{t!r}]")
        return Resolution(self.global_scheme, "global_quant_config")

    def describe(self) -> dict:
        return {**super().describe(), "version": self.raw.get("version"), "global": str(self.global_scheme)}


@register("quark")
def parse(qc: dict, hf_quant_config, family: str) -> QuarkConfig:
    return QuarkConfig(qc)
