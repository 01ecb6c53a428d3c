"""Mutants: each module here reintroduces one pre-fix upstream behaviour into the built-in engine.

A module defines `MUTANT = Mutant(...)`. `qcert selftest` applies each mutant and requires every case
it names to fail. Patches are `(module, attribute, replacement)`; a missing target is an error, so a
rename in the engine breaks the mutant loudly instead of letting it silently patch nothing. Patch the
function the engine looks up at call time (a module global), not a name someone imported by value.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator
from unittest import mock

from qcert.conformance.case import validate_id


class MutantError(ValueError):
    pass


@dataclass(frozen=True)
class Mutant:
    id: str
    description: str
    upstream: str
    kills: tuple[str, ...]
    patches: tuple[tuple[str, str, Any], ...] = ()
    # Alternative to patches for changes a setattr cannot express.
    context: Callable[[], ContextManager[Any]] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Accept lists in module definitions, store tuples.
        object.__setattr__(self, "kills", tuple(self.kills))
        object.__setattr__(self, "patches", tuple(tuple(p) for p in self.patches))
        validate_id(self.id)
        if not self.kills:
            raise MutantError(f"mutant {self.id} names no case to kill")
        for case_id in self.kills:
            validate_id(case_id)
        if bool(self.patches) == (self.context is not None):
            raise MutantError(f"mutant {self.id} needs exactly one of patches=[...] or context=...")

    @contextlib.contextmanager
    def apply(self) -> Iterator[None]:
        """Patch the engine for the duration of the block; always restored."""
        with contextlib.ExitStack() as stack:
            for module_name, attr, replacement in self.patches:
                target = _target(self.id, module_name, attr)
                stack.enter_context(mock.patch.object(target, attr.rsplit(".", 1)[-1], replacement))
            if self.context is not None:
                stack.enter_context(self.context())
            yield


def _target(mutant_id: str, module_name: str, attr: str) -> Any:
    """The object owning `attr` ("func" or "Class.method"), checking the attribute exists."""
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise MutantError(f"mutant {mutant_id}: cannot import {module_name}: {e}") from None
    *owners, last = attr.split(".")
    for name in owners:
        obj = getattr(obj, name, None)
    if obj is None or not hasattr(obj, last):
        raise MutantError(f"mutant {mutant_id}: {module_name}.{attr} does not exist (renamed?)")
    return obj


def discover() -> dict[str, Mutant]:
    """Every MUTANT in this package, by id."""
    found: dict[str, Mutant] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        mutant = getattr(module, "MUTANT", None)
        if not isinstance(mutant, Mutant):
            raise MutantError(f"{module.__name__} defines no MUTANT = Mutant(...)")
        if mutant.id in found:
            raise MutantError(f"mutant id {mutant.id} is defined twice ({module.__name__})")
        found[mutant.id] = mutant
    return found
