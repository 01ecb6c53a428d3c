"""Engine layers. Each declares its parameters (on the meta device) and the checkpoint tensors that
fill them; the load plan is the union of those declarations, so nothing is loaded by convention.

- `QLinear`: quant-aware linear, optionally fused (several output shards) and optionally stacked over
  experts (MoE). Its scheme comes from the quant config; forward calls kernel ops, never a backend.
- `PlainLinear` / `Weight`: not quantization-aware. If the checkpoint stores one of these quantized
  (a router exported as MXFP4, FLUX's AdaLayerNorm linear in FP8), the plan dequantizes it at load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .quant.base import QuantConfig, Resolution, Source
from .quant.scheme import UNQUANTIZED, Scheme, linear_params


@dataclass(frozen=True)
class Copy:
    """Copy one checkpoint tensor into (a slice of) one engine parameter."""

    tensor: str
    param: str
    source: Source
    expert: int | None = None
    rows: tuple[int, int] | None = None  # row range for per-row params
    shard: int | None = None  # index for per-shard scalars


@dataclass(frozen=True)
class Dequant:
    """Dequantize a group of checkpoint tensors (a quantized weight + its scales) into a float param."""

    param: str
    scheme: Scheme
    tensors: dict  # engine-side name ("weight", "weight_scale", ...) -> checkpoint tensor
    sources: tuple  # the Source of each tensor, same order as tensors
    decided_by: str


@dataclass
class Declared:
    """What one module contributes to the plan."""

    module: str
    kind: str
    resolution: Resolution
    sources: list[str] = field(default_factory=list)
    jobs: list = field(default_factory=list)
    dequantized_at_load: bool = False


def _empty(shape, dtype) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape, dtype=dtype, device="meta"), requires_grad=False)


class QLinear(nn.Module):
    """A quant-aware linear layer.

    `shard_sources[e][s]` is the checkpoint module name of output shard s of expert e (one expert for
    a plain linear). `rows[s]` is the output size of shard s; `k` the input size.
    """

    quant_aware = True

    def __init__(self, k: int, rows: list[int], shard_sources: list[list[str]], resolution: Resolution,
                 dtype: torch.dtype, bias: bool = False, stacked: bool = False):
        super().__init__()
        self.k, self.rows, self.shard_sources = k, list(rows), shard_sources
        self.resolution, self.scheme, self.stacked = resolution, resolution.scheme, stacked
        self.n = sum(rows)
        lead = (len(shard_sources),) if stacked else ()
        self.param_specs = linear_params(self.scheme, self.rows, k, dtype)
        for spec in self.param_specs:
            self.register_parameter(spec.name, _empty(lead + spec.shape, spec.dtype))
        if bias:
            self.register_parameter("bias", _empty(lead + (self.n,), dtype))
        else:
            self.bias = None
        self.layout = "plain"  # set by post-load layout transforms (see quant/methods.py)
        self.compute_dtype = dtype  # the activations' dtype (what a layout's kernel will be called with)

    def declare(self, name: str, qc: QuantConfig, kind: str = "linear") -> Declared:
        d = Declared(name, kind, self.resolution)
        per = {p.name: p.per for p in self.param_specs}
        for e, shard_names in enumerate(self.shard_sources):
            row0 = 0
            for s, (ckpt_module, rows) in enumerate(zip(shard_names, self.rows)):
                for src in qc.sources(self.scheme, rows, self.k):
                    tensor = f"{ckpt_module}.{src.suffix}"
                    d.sources.append(tensor)
                    where = dict(rows=(row0, row0 + rows)) if per[src.param] == "row" else dict(shard=s)
                    d.jobs.append(Copy(tensor, f"{name}.{src.param}", src, e if self.stacked else None, **where))
                if self.bias is not None:
                    tensor = f"{ckpt_module}.bias"
                    d.sources.append(tensor)
                    src = Source("bias", "bias", ("BF16", "F16", "F32"), (rows,))
                    d.jobs.append(Copy(tensor, f"{name}.bias", src, e if self.stacked else None, rows=(row0, row0 + rows)))
                row0 += rows
        return d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from .quant.methods import linear_forward

        return linear_forward(self, x)


class PlainLinear(nn.Module):
    """A linear layer that is not quantization-aware (routers, AdaLayerNorm projections)."""

    quant_aware = False

    def __init__(self, k: int, n: int, source: str, resolution: Resolution, dtype: torch.dtype,
                 bias: bool = False, weight_dtype: torch.dtype | None = None):
        super().__init__()
        self.k, self.n, self.source, self.resolution = k, n, source, resolution
        self.weight = _empty((n, k), weight_dtype or dtype)
        self.bias = _empty((n,), dtype) if bias else None

    def declare(self, name: str, qc: QuantConfig, kind: str = "linear") -> Declared:
        stored = self.resolution.scheme
        d = Declared(name, kind, Resolution(UNQUANTIZED, self.resolution.decided_by, self.resolution.excluded_by))
        srcs = qc.sources(stored, self.n, self.k)
        tensors = {s.param: f"{self.source}.{s.suffix}" for s in srcs}
        d.sources.extend(tensors.values())
        if stored.quantized:
            d.jobs.append(Dequant(f"{name}.weight", stored, tensors, tuple(srcs), self.resolution.decided_by))
            d.dequantized_at_load = True
        else:
            d.jobs.append(Copy(tensors["weight"], f"{name}.weight", srcs[0]))
        if self.bias is not None:
            t = f"{self.source}.bias"
            d.sources.append(t)
            d.jobs.append(Copy(t, f"{name}.bias", Source("bias", "bias", ("BF16", "F16", "F32"), (self.n,))))
        return d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


class Weight(nn.Module):
    """A single unquantized tensor (embedding table, norm weight, router bias)."""

    quant_aware = False

    def __init__(self, shape: tuple[int, ...], source: str, dtype: torch.dtype, kind: str = "weight",
                 dtypes: tuple[str, ...] = ("BF16", "F16", "F32")):
        super().__init__()
        self.source, self.kind, self.dtypes = source, kind, dtypes
        self.weight = _empty(shape, dtype)

    def declare(self, name: str, qc: QuantConfig, kind: str | None = None) -> Declared:
        d = Declared(name, kind or self.kind, Resolution(UNQUANTIZED, "not quantizable"))
        d.sources.append(self.source)
        src = Source(self.source.rsplit(".", 1)[-1], "weight", self.dtypes, tuple(self.weight.shape))
        d.jobs.append(Copy(self.source, f"{name}.weight", src))
        return d


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    y = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    return w.to(x.dtype) * y
