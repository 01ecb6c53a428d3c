"""Engine adapters by name: the built-in table, then the `qcert.engines` entry-point group.

`--engine` also accepts `package.module:Class` directly, so an engine author can try an adapter
before packaging it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

BUILTIN = {"builtin": "qcert.conformance.adapters.builtin:BuiltinAdapter"}
GROUP = "qcert.engines"


class UnknownEngine(ValueError):
    pass


def available() -> dict[str, str]:
    """Engine name -> 'module:Class' target."""
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def resolve(name: str) -> type:
    """The adapter class for an engine name (imports its module; does not instantiate)."""
    target = available().get(name, name if ":" in name else None)
    if target is None:
        raise UnknownEngine(f"unknown engine {name!r}; known: {', '.join(sorted(available()))} (or module:Class)")
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise UnknownEngine(f"engine {name!r}: cannot import {target}: {e}") from None


def create(name: str) -> Any:
    return resolve(name)()
