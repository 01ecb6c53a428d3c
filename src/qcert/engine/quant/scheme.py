"""Quantization schemes and how each one lays out a linear layer's parameters.

A scheme is what a module's weights ARE (format, group size, activation mode), independent of which
producer wrote them. Producers differ only in tensor names and scale conventions; quant configs
(quark.py, modelopt.py, compressed_tensors.py) translate those into the layouts here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FORMATS = ("unquantized", "mxfp4", "nvfp4", "fp8")


@dataclass(frozen=True)
class Scheme:
    format: str = "unquantized"
    group_size: int | None = None
    # Activation handling: None (weights only), "mxfp4" (dynamic per-32 QDQ), "fp8" (static, input_scale),
    # "nvfp4" (input_scale is the activation global scale), "fp8_dynamic" (per-token scales at run time).
    activation: str | None = None
    # FP8 weight scale granularity: "tensor" (one per shard) or "channel" (one per output row).
    strategy: str = "tensor"
    # MXFP4 shared-exponent rule used for activation QDQ ("even" as producers do, or "floor").
    rule: str = "even"

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"unknown scheme format {self.format!r}; known: {', '.join(FORMATS)}")

    @property
    def quantized(self) -> bool:
        return self.format != "unquantized"

    def __str__(self) -> str:
        if not self.quantized:
            return "unquantized"
        parts = [self.format]
        if self.group_size:
            parts.append(f"g{self.group_size}")
        if self.format == "fp8":
            parts.append(f"per-{self.strategy}")
        if self.activation:
            parts.append(f"a:{self.activation}")
        return "/".join(parts)


UNQUANTIZED = Scheme()
MXFP4 = Scheme("mxfp4", 32)
NVFP4 = Scheme("nvfp4", 16)
FP8 = Scheme("fp8")


@dataclass(frozen=True)
class ParamSpec:
    """One engine parameter of a linear layer for `shards` output blocks of `rows[i]` rows each."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    per: str  # "row": rows concatenated over shards; "shard": one scalar per shard


def linear_params(scheme: Scheme, rows: list[int], k: int, dtype: torch.dtype) -> list[ParamSpec]:
    """Engine parameters of a (possibly fused) linear layer with output shards `rows` and K inputs."""
    n, s = sum(rows), len(rows)
    f = scheme.format
    if f == "unquantized":
        return [ParamSpec("weight", (n, k), dtype, "row")]
    _check_k(scheme, k)
    if f == "mxfp4":
        return [
            ParamSpec("weight", (n, k // 2), torch.uint8, "row"),
            ParamSpec("weight_scale", (n, k // 32), torch.uint8, "row"),
        ]
    if f == "nvfp4":
        return [
            ParamSpec("weight", (n, k // 2), torch.uint8, "row"),
            ParamSpec("weight_scale", (n, k // 16), torch.float8_e4m3fn, "row"),
            ParamSpec("weight_scale_2", (s,), torch.float32, "shard"),
            ParamSpec("input_scale", (s,), torch.float32, "shard"),
        ]
    # fp8
    specs = [ParamSpec("weight", (n, k), torch.float8_e4m3fn, "row")]
    if scheme.strategy == "channel":
        specs.append(ParamSpec("weight_scale", (n, 1), torch.float32, "row"))
    else:
        specs.append(ParamSpec("weight_scale", (s,), torch.float32, "shard"))
    if scheme.activation == "fp8":
        specs.append(ParamSpec("input_scale", (s,), torch.float32, "shard"))
    return specs


def _check_k(scheme: Scheme, k: int) -> None:
    g = {"mxfp4": 32, "nvfp4": 16}.get(scheme.format)
    if g and k % g:
        raise ValueError(f"{scheme}: input features {k} are not a multiple of the group size {g}")
