"""qcert's reference engine: `load(path, device=..., **engine_args) -> LoadedModel` and `plan(...)`."""

from .loader import LoadedModel, load, plan

__all__ = ["LoadedModel", "load", "plan"]
