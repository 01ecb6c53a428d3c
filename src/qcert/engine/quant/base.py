"""What every quantization config answers: which scheme for this module, and which checkpoint tensors
carry it. Producers' configs subclass `QuantConfig` and are found by `detect()`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import QuantConfigError
from .matching import dedupe, first_match, language_model_forms
from .scheme import UNQUANTIZED, Scheme

SCALAR = ()  # expected shape of a per-tensor scale; [1] is accepted too (see `shape_ok`)


@dataclass(frozen=True)
class Resolution:
    scheme: Scheme
    decided_by: str  # the config entry that decided, for error messages and reports
    excluded_by: str | None = None


@dataclass(frozen=True)
class Source:
    """A checkpoint tensor feeding one engine parameter of one shard."""

    suffix: str  # checkpoint name = module + "." + suffix
    param: str  # engine parameter name in the layer
    dtypes: tuple[str, ...]  # accepted safetensors dtypes
    shape: tuple[int, ...]
    convert: str | None = None  # "reciprocal": stored value is 1 / engine value (compressed-tensors)
    optional: bool = False


def shape_ok(expected: tuple[int, ...], found: tuple[int, ...]) -> bool:
    return tuple(found) == tuple(expected) or (expected == SCALAR and tuple(found) == (1,))


FLOATS = ("BF16", "F16", "F32")


def default_sources(scheme: Scheme, rows: int, k: int) -> list[Source]:
    """Tensor names shared by Quark and ModelOpt; compressed-tensors overrides some suffixes."""
    f = scheme.format
    if f == "unquantized":
        return [Source("weight", "weight", FLOATS, (rows, k))]
    if f == "mxfp4":
        return [Source("weight", "weight", ("U8",), (rows, k // 2)),
                Source("weight_scale", "weight_scale", ("U8", "F8_E8M0"), (rows, k // 32))]
    if f == "nvfp4":
        return [Source("weight", "weight", ("U8",), (rows, k // 2)),
                Source("weight_scale", "weight_scale", ("F8_E4M3",), (rows, k // 16)),
                Source("weight_scale_2", "weight_scale_2", ("F32",), SCALAR),
                Source("input_scale", "input_scale", ("F32",), SCALAR)]
    srcs = [Source("weight", "weight", ("F8_E4M3",), (rows, k))]
    if scheme.strategy == "channel":
        srcs.append(Source("weight_scale", "weight_scale", FLOATS, (rows, 1)))
    else:
        srcs.append(Source("weight_scale", "weight_scale", FLOATS, SCALAR))
    if scheme.activation == "fp8":
        srcs.append(Source("input_scale", "input_scale", FLOATS, SCALAR))
    return srcs


class NameMapper:
    """HF checkpoint names <-> engine names by prefix substitution (the wrapper's `language_model.`,
    Qwen3.5's `model.language_model.`). A fresh mapper per load; it holds no class state."""

    def __init__(self, prefixes: list[tuple[str, str]] | None = None):
        self.prefixes = list(prefixes or [])

    def to_engine(self, name: str) -> str:
        for hf, eng in self.prefixes:
            if name.startswith(hf):
                return eng + name[len(hf):]
        return name

    def to_checkpoint(self, name: str) -> str:
        for hf, eng in self.prefixes:
            if name.startswith(eng):
                return hf + name[len(eng):]
        return name

    def map_entry(self, entry: str) -> str:
        """Exclude entries are module names or `re:` patterns; map both (a regex by its literal prefix)."""
        if entry.startswith("re:"):
            return "re:" + self.to_engine(entry[3:])
        return self.to_engine(entry)


class QuantConfig:
    """Base: subclasses set `method`, parse their schema and implement `_resolve_one` + `sources`."""

    method = "none"
    entries_field = "exclude"  # the config field the exclude entries came from, for messages

    def __init__(self, raw: dict, origin: str):
        self.raw = raw
        self.origin = origin  # file the config was read from, for error messages
        self.entries: list[str] = []  # exclude entries as written in the checkpoint
        self.exclude_entries: list[str] = []  # effective entries in engine names (see `bind`)
        self.matched: set[str] = set()

    # --- per-load binding ------------------------------------------------------------------
    def bind(self, mapper: NameMapper) -> None:
        """Translate the checkpoint's exclude entries to engine names for this load: the mapper is
        applied, and both `language_model.` forms of every entry are kept (order kept, deduped)."""
        self._forms = {e: language_model_forms([e, mapper.map_entry(e)]) for e in self.entries}
        self.exclude_entries = dedupe([f for e in self.entries for f in self._forms[e]])
        self.matched = set()
        self.mapper = mapper

    def names(self, module: str) -> list[str]:
        """The names an exclude entry may use for an engine module: its engine name and its checkpoint
        name (entries are written against the checkpoint; regexes cannot be rewritten reliably)."""
        mapper = getattr(self, "mapper", None)
        return dedupe([module, mapper.to_checkpoint(module)]) if mapper else [module]

    def excluded_by(self, module: str, matcher) -> str | None:
        """The exclude entry, as written in the checkpoint, that excludes `module` (or None)."""
        for name in self.names(module):
            hit = first_match(self.exclude_entries, name, matcher)
            if hit is not None:
                self.matched.add(hit)
                return next((e for e in self.entries if hit in self._forms.get(e, ())), hit)
        return None

    def unmatched_exclude_entries(self) -> list[str]:
        """Entries as written in the checkpoint that matched no module of this load."""
        return [e for e in self.entries if not any(f in self.matched for f in self._forms.get(e, [e]))]

    # --- resolution --------------------------------------------------------------------------
    def resolve(self, module: str, packed: dict[str, list[str]]) -> Resolution:
        """Scheme of an engine module. A fused module (its last name component is a key of the
        load's packed mapping) takes its shards' scheme; shards that disagree are an error."""
        prefix, _, last = module.rpartition(".")
        shards = packed.get(last)
        if not shards:
            return self._resolve_one(module)
        base = prefix + "." if prefix else ""
        decisions = [(base + s, self._resolve_one(base + s)) for s in shards]
        schemes = {r.scheme for _, r in decisions}
        if len(schemes) > 1:
            detail = "; ".join(f"{n}: {r.scheme} ({r.decided_by})" for n, r in decisions)
            raise QuantConfigError(
                f"{self.origin}: fused module {module!r}: all shards must use the same scheme, found {detail}"
            )
        return decisions[0][1]

    def _resolve_one(self, module: str) -> Resolution:
        raise NotImplementedError

    def sources(self, scheme: Scheme, rows: int, k: int) -> list[Source]:
        return default_sources(scheme, rows, k)

    def describe(self) -> dict:
        return {"method": self.method, "origin": self.origin}


class NoQuantConfig(QuantConfig):
    """A checkpoint without a quantization config: everything unquantized."""

    def __init__(self):
        super().__init__({}, "config.json")

    def _resolve_one(self, module: str) -> Resolution:
        return Resolution(UNQUANTIZED, "no quantization_config")


# --- detection --------------------------------------------------------------------------------
_PARSERS: dict[str, Callable] = {}


def register(method: str):
    """Register a parser for `quantization_config.quant_method == method`."""

    def deco(fn):
        _PARSERS[method] = fn
        return fn

    return deco


def detect(config: dict, hf_quant_config: dict | None, family: str) -> QuantConfig:
    """The quant config a checkpoint declares, picked by its `quant_method` with no flags.

    `family` lets a producer's parser pick its variant (e.g. ModelOpt FP8 for diffusion)."""
    from . import compressed_tensors, modelopt, quark  # noqa: F401  (registration)

    qc = config.get("quantization_config") or config.get("compression_config")
    if qc is None and hf_quant_config is not None:
        qc = {"quant_method": "modelopt"}
    if qc is None:
        return NoQuantConfig()
    if not isinstance(qc, dict):
        raise QuantConfigError(f"config.json: field 'quantization_config' must be an object, found {qc!r}")
    method = qc.get("quant_method")
    if method is None and "config_groups" in qc:
        method = "compressed-tensors"  # legacy `compression_config` blocks carry no quant_method
    parser = _PARSERS.get(method)
    if parser is None:
        raise QuantConfigError(
            f"config.json: quantization_config.quant_method {method!r} is not supported; "
            f"supported: {', '.join(sorted(_PARSERS))}"
        )
    return parser(qc, hf_quant_config, family)
