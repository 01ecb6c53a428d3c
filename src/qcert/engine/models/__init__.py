"""Model families: which architectures qcert builds, found by `architectures[0]` or `model_type`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CheckpointError

_FAMILIES: list = []


def register(cls):
    _FAMILIES.append(cls)
    return cls


def _load_all() -> None:
    from . import deepseek  # noqa: F401  (registration)

    for optional in ("qwen_moe", "llama", "flux"):
        try:
            __import__(f"{__name__}.{optional}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{optional}":
                raise


def families() -> list:
    """Every registered family, in a fixed order (by name), whatever order they were imported in."""
    _load_all()
    return sorted(_FAMILIES, key=lambda f: f.name)


def find_family(config: dict, origin: str = "config.json"):
    """The family for a config: by `architectures[0]`, else `model_type` / `_class_name`."""
    archs = config.get("architectures")
    if archs is not None and not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
        raise CheckpointError(f"{origin}: field 'architectures' must be a list of strings, found {archs!r}")
    fams = families()
    for fam in fams:
        if archs and archs[0] in fam.architectures:
            return fam
    keys = [config.get("model_type"), config.get("_class_name")]
    for fam in fams:
        if any(k and k in fam.model_types for k in keys):
            return fam
    known = sorted(a for f in fams for a in f.architectures)
    if not archs:
        raise CheckpointError(
            f"{origin}: field 'architectures' is missing or empty and model_type {config.get('model_type')!r} "
            f"is not one qcert knows; known architectures: {', '.join(known)}"
        )
    raise CheckpointError(f"{origin}: architecture {archs[0]!r} is not supported; known: {', '.join(known)}")


class Family:
    """Defaults every model family shares. A subclass sets `name`, `architectures`, `model_types`,
    `PACKED` (its fused modules), optionally `BY_MODEL_TYPE` and `WRAPPERS` (architectures whose text
    model lives under a prefix with its config in `text_config`), and implements `create`."""

    name = ""
    architectures: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()
    PACKED: tuple = ()
    BY_MODEL_TYPE: dict[str, str] = {}
    WRAPPERS: dict[str, tuple[str, str]] = {}  # architecture -> (checkpoint prefix, engine prefix)

    @classmethod
    def packed_modules(cls) -> dict[str, list[str]]:
        return {k: list(v) for k, v in cls.PACKED}  # a fresh mapping per load, never class state

    @classmethod
    def architecture(cls, config: dict) -> str:
        archs = config.get("architectures") or []
        if archs and archs[0] in cls.architectures:
            return archs[0]
        key = config.get("model_type") or config.get("_class_name")
        return cls.BY_MODEL_TYPE.get(key, cls.architectures[0])

    @classmethod
    def text_config(cls, config: dict) -> dict:
        arch = cls.architecture(config)
        if arch not in cls.WRAPPERS:
            return config
        tc = config.get("text_config")
        if not isinstance(tc, dict):
            raise CheckpointError(f"config.json: {arch} needs an object 'text_config'")
        return tc

    @classmethod
    def mapper(cls, config: dict):
        from ..quant.base import NameMapper

        wrapped = cls.WRAPPERS.get(cls.architecture(config))
        return NameMapper([wrapped] if wrapped else [])

    @classmethod
    def build(cls, config: dict, qc, args, ctx: "BuildContext"):
        from .common import Builder, Cfg

        arch = cls.architecture(config)
        b = Builder(qc, cls.mapper(config), ctx, args.dtype)
        return cls.create(b, Cfg(cls.text_config(config), arch), config, args, ctx)

    @classmethod
    def create(cls, b, c, config: dict, args, ctx: "BuildContext"):
        raise NotImplementedError


@dataclass
class BuildContext:
    """Per-load state a model definition fills while it builds. Never shared between loads."""

    packed: dict[str, list[str]]
    notes: list[str] = field(default_factory=list)
    # checkpoint-name prefixes deliberately left unloaded, with the reason
    skipped: dict[str, str] = field(default_factory=dict)
    fusion: dict | None = None
