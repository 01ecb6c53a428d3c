"""The built-in engine as an EngineAdapter (minimal: normalize_args; the lead adds plan/load)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from qcert.engine import args as engine_args


def _version() -> str:
    try:
        return version("qcert")
    except PackageNotFoundError:
        return "0+unknown"


class BuiltinAdapter:
    name = "builtin"
    version = _version()

    def normalize_args(self, **kwargs: Any) -> engine_args.EngineArgs:
        # Looked up through the module on every call so mutants that patch it take effect.
        return engine_args.normalize_args(**kwargs)
