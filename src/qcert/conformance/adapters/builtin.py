"""The built-in engine (qcert.engine) as an EngineAdapter: the one adapter the suite ships."""

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

    def plan(self, checkpoint, **kwargs: Any) -> dict:
        from qcert.engine import loader

        return loader.plan(checkpoint, **kwargs)

    def load(self, checkpoint, **kwargs: Any):
        from qcert.engine import loader

        return loader.load(checkpoint, **kwargs)
