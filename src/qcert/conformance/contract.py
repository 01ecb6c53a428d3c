"""The engine contract: everything a conformance case may ask of an engine.

Cases talk only to an `EngineAdapter`; they never import engine internals. CONTRACT.md beside this
file is the versioned, human-readable form of this protocol; bump CONTRACT_VERSION when either changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

import torch

CONTRACT_VERSION = "0.1"


@runtime_checkable
class LoadedModel(Protocol):
    def report(self) -> dict[str, Any]:
        """The load report, in the schema of CONTRACT.md (the same keys as `qcert inspect --json`)."""

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Causal LMs: `forward(input_ids[B, T]) -> float32 logits[B, T, vocab]`.
        Diffusion transformers: `forward(**inputs) -> float32 noise prediction`."""

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy decoding; returns `[B, T + max_new_tokens]` token ids."""

    def parameters(self) -> Mapping[str, torch.Tensor]:
        """Every engine parameter by its engine name (after post-load transforms)."""

    def update_weights_from_disk(self, checkpoint: Path, tensors: Iterable[str] | None = None) -> None:
        """Replace weights from a checkpoint directory, all-or-nothing (see CONTRACT.md)."""


@runtime_checkable
class EngineAdapter(Protocol):
    name: str
    version: str

    def normalize_args(self, **kwargs: Any) -> Any:
        """Engine arguments in their normalized form; bad values raise ValueError.
        The result exposes at least `device` (a device TYPE, never with ':') and `device_index`."""

    def plan(self, checkpoint: Path, **kwargs: Any) -> dict[str, Any]:
        """The static load report from config files and safetensors headers only (no tensor data)."""

    def load(self, checkpoint: Path, **kwargs: Any) -> LoadedModel:
        """Load a checkpoint directory with the given engine arguments."""
