"""compressed-tensors (`quant_method: "compressed-tensors"`, legacy block `compression_config`).

Schemes from `config_groups` (first group whose `targets` match wins; "Linear" matches every linear):
NVFP4 (4-bit float, tensor_group, group 16), MXFP4 (4-bit float, group 32), FP8 (8-bit float, per
tensor or per channel). `ignore` entries are exact names or `re:` regexes (matching.py).

Tensor names differ from ModelOpt's: NVFP4/MXFP4 weights are `weight_packed`; NVFP4 global scales are
stored as reciprocals (`weight_global_scale` = 1 / ModelOpt's `weight_scale_2`, `input_global_scale`
= 1 / `input_scale`), converted at load (Source.convert = "reciprocal").
"""

from __future__ import annotations

from ..errors import QuantConfigError
from .base import FLOATS, SCALAR, QuantConfig, Resolution, Source, default_sources, register
from .matching import first_match, match_exact_or_regex
from .scheme import UNQUANTIZED, Scheme

FORMATS = ("nvfp4-pack-quantized", "mxfp4-pack-quantized", "float-quantized", "naive-quantized", "mixed-precision")


class CompressedTensorsConfig(QuantConfig):
    method = "compressed-tensors"
    entries_field = "ignore"

    def __init__(self, raw: dict, origin: str = "config.json quantization_config"):
        super().__init__(raw, origin)
        ignore = raw.get("ignore") or []
        if not isinstance(ignore, list) or not all(isinstance(e, str) for e in ignore):
            raise QuantConfigError(f"{origin}: field 'ignore' must be a list of strings, found {ignore!r}")
        self.entries = list(ignore)
        fmt = raw.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise QuantConfigError(f"{origin}: field 'format' is {fmt!r}; supported: {', '.join(FORMATS)}")
        groups = raw.get("config_groups")
        if not isinstance(groups, dict) or not groups:
            raise QuantConfigError(f"{origin}: field 'config_groups' must be a non-empty object, found {groups!r}")
        self.groups: list[tuple[str, list[str], Scheme]] = []
        for gname, g in groups.items():
            where = f"config_groups[{gname!r}]"
            if not isinstance(g, dict):
                raise QuantConfigError(f"{origin}: {where} must be an object, found {g!r}")
            targets = g.get("targets")
            if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
                raise QuantConfigError(f"{origin}: {where}.targets must be a non-empty list of strings, found {targets!r}")
            self.groups.append((gname, targets, self._scheme(where, g)))

    def _scheme(self, where: str, g: dict) -> Scheme:
        w = g.get("weights")
        if w is None:
            return UNQUANTIZED
        if not isinstance(w, dict):
            raise QuantConfigError(f"{self.origin}: {where}.weights must be an object, found {w!r}")
        bits, typ, strategy, gs = w.get("num_bits"), w.get("type"), w.get("strategy"), w.get("group_size")
        act = self._activation(where, g.get("input_activations"))
        if typ != "float":
            raise QuantConfigError(f"{self.origin}: {where}.weights.type is {typ!r}; qcert reads 'float' schemes")
        if bits == 4 and strategy == "tensor_group" and gs == 16:
            return Scheme("nvfp4", 16, act)
        if bits == 4 and strategy == "group" and gs == 32:
            return Scheme("mxfp4", 32, act)
        if bits == 8 and strategy in ("tensor", "channel"):
            return Scheme("fp8", None, act, strategy=strategy)
        raise QuantConfigError(f"{self.origin}: {where}.weights (num_bits={bits!r}, strategy={strategy!r}, "
                               f"group_size={gs!r}) is not NVFP4, MXFP4 or FP8")

    def _activation(self, where: str, a) -> str | None:
        if a is None:
            return None
        if not isinstance(a, dict):
            raise QuantConfigError(f"{self.origin}: {where}.input_activations must be an object, found {a!r}")
        bits, dyn = a.get("num_bits"), a.get("dynamic")
        if bits == 4 and a.get("group_size") == 16:
            return "nvfp4"  # global scale static (input_global_scale), block scales dynamic ("local")
        if bits == 4 and a.get("group_size") == 32:
            return "mxfp4"
        if bits == 8:
            # FP8_DYNAMIC: per-token scales computed at run time (no input_scale tensor)
            return "fp8_dynamic" if dyn is True else "fp8"
        raise QuantConfigError(f"{self.origin}: {where}.input_activations (num_bits={bits!r}) is not supported")

    def _resolve_one(self, module: str) -> Resolution:
        hit = first_match(self.exclude_entries, module, match_exact_or_regex)
        if hit is not None:
            self.matched.add(hit)
            return Resolution(UNQUANTIZED, f"ignore entry {hit!r}", excluded_by=hit)
        for gname, targets, scheme in self.groups:
            for t in targets:
                if t == "Linear" or match_exact_or_regex(t, module):
                    return Resolution(scheme, f"config_groups[{gname!r}] target {t!r}")
        return Resolution(UNQUANTIZED, "no config_groups target matches")

    def sources(self, scheme: Scheme, rows: int, k: int) -> list[Source]:
        f = scheme.format
        if f == "nvfp4":
            return [Source("weight_packed", "weight", ("U8",), (rows, k // 2)),
                    Source("weight_scale", "weight_scale", ("F8_E4M3",), (rows, k // 16)),
                    Source("weight_global_scale", "weight_scale_2", ("F32",), SCALAR, convert="reciprocal"),
                    Source("input_global_scale", "input_scale", ("F32",), SCALAR, convert="reciprocal")]
        if f == "mxfp4":
            return [Source("weight_packed", "weight", ("U8",), (rows, k // 2)),
                    Source("weight_scale", "weight_scale", ("U8", "F8_E8M0"), (rows, k // 32))]
        if f == "fp8":
            srcs = [Source("weight", "weight", ("F8_E4M3",), (rows, k)),
                    Source("weight_scale", "weight_scale", FLOATS, (rows, 1) if scheme.strategy == "channel" else SCALAR)]
            if scheme.activation == "fp8":
                srcs.append(Source("input_scale", "input_scale", FLOATS, SCALAR))
            return srcs
        return default_sources(scheme, rows, k)

    def describe(self) -> dict:
        return {**super().describe(), "format": self.raw.get("format")}


@register("compressed-tensors")
def parse(qc: dict, hf_quant_config, family: str):
    return CompressedTensorsConfig(qc)
