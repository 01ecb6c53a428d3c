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
    _load_all()
    return list(_FAMILIES)


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


@dataclass
class BuildContext:
    """Per-load state a model definition fills while it builds. Never shared between loads."""

    packed: dict[str, list[str]]
    notes: list[str] = field(default_factory=list)
    # checkpoint-name prefixes deliberately left unloaded, with the reason
    skipped: dict[str, str] = field(default_factory=dict)
    fusion: dict | None = None
