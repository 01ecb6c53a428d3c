"""Case metadata: the `@case(...)` decorator every conformance case carries.

The metadata lives on the test function (`__qcert_case__`); the plugin reads it from collected items,
so a parametrized or hypothesis-driven function is one case with many items.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable

import pytest

HARDWARE = ("cuda", "rocm", "gpu")
# `area/name`, lowercase; extra `/` levels allowed for big areas. Dots for names like kimi-k2.5.
CASE_ID_RE = re.compile(r"[a-z0-9][a-z0-9.-]*(/[a-z0-9][a-z0-9.-]*)+")
ATTR = "__qcert_case__"


@dataclass(frozen=True)
class CaseMeta:
    id: str
    statement: str
    refs: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    hardware: str | None = None
    raises: tuple[type[BaseException], str] | None = None

    def as_dict(self) -> dict[str, Any]:
        raises = None
        if self.raises is not None:
            raises = {"type": self.raises[0].__name__, "fragment": self.raises[1]}
        return {
            "case": self.id,
            "statement": self.statement,
            "refs": list(self.refs),
            "features": list(self.features),
            "hardware": self.hardware,
            "raises": raises,
        }


@cache
def known_features() -> dict[str, str]:
    with open(Path(__file__).with_name("features.toml"), "rb") as f:
        return dict(tomllib.load(f)["features"])


def validate_id(case_id: object) -> str:
    if not isinstance(case_id, str) or not CASE_ID_RE.fullmatch(case_id):
        raise ValueError(f"case id {case_id!r} must look like 'area/name' (lowercase, digits, '-', '.')")
    return case_id


def case(
    id: str,
    statement: str,
    *,
    refs: list[str] | tuple[str, ...] = (),
    features: list[str] | tuple[str, ...] = (),
    hardware: str | None = None,
    raises: tuple[type[BaseException], str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a test function as the conformance case `id`. Errors here surface as collection
    errors of the case module, naming the offending value."""
    validate_id(id)
    if not isinstance(statement, str) or not statement.strip() or "\n" in statement:
        raise ValueError(f"case {id}: statement must be one non-empty line")
    unknown = [f for f in features if f not in known_features()]
    if unknown:
        raise ValueError(f"case {id}: unknown feature(s) {', '.join(unknown)} (see conformance/features.toml)")
    if hardware not in (None, *HARDWARE):
        raise ValueError(f"case {id}: hardware {hardware!r} is not one of None, {', '.join(HARDWARE)}")
    if raises is not None and not (
        isinstance(raises, tuple)
        and len(raises) == 2
        and isinstance(raises[0], type)
        and issubclass(raises[0], BaseException)
        and isinstance(raises[1], str)
    ):
        raise ValueError(f"case {id}: raises must be (ExceptionType, 'message fragment')")
    meta = CaseMeta(id, statement, tuple(refs), tuple(features), hardware, raises)

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        setattr(fn, ATTR, meta)
        return fn

    return mark


def meta_of(obj: object) -> CaseMeta | None:
    # hypothesis' @given keeps the inner function on `.hypothesis.inner_test`; support both orders.
    meta = getattr(obj, ATTR, None)
    if meta is None:
        inner = getattr(getattr(obj, "hypothesis", None), "inner_test", None)
        meta = getattr(inner, ATTR, None)
    return meta


def expect_error(meta: CaseMeta) -> Any:
    """Context manager asserting the case's declared error: its type, and the fragment in its text.
    Returns pytest's ExceptionInfo so the case can check more (e.g. that the value is named)."""
    if meta.raises is None:
        raise ValueError(f"case {meta.id} declares no raises=(...)")
    exc_type, fragment = meta.raises
    return pytest.raises(exc_type, match=re.escape(fragment) if fragment else None)
