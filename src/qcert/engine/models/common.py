"""Pieces every model family uses: the per-load layer builder, MLPs, MoE routing and experts, rope."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import CheckpointError, QuantConfigError
from ..fusion import Fusion
from ..layers import PlainLinear, QLinear, Weight, rms_norm
from ..quant.base import NameMapper, QuantConfig, Resolution
from ..quant.methods import call_op
from . import BuildContext


class Cfg:
    """A model config's fields as attributes; a missing field is an error naming it and the model."""

    def __init__(self, raw: dict, arch: str):
        self.raw, self.arch = raw, arch

    def __getattr__(self, key):
        try:
            return self.raw[key]
        except KeyError:
            raise CheckpointError(f"config.json: field {key!r} is missing (needed by {self.arch})") from None

    def get(self, key, default=None):
        return self.raw.get(key, default)


class Builder:
    """Creates layers for one load: resolves each module's scheme and its checkpoint names."""

    def __init__(self, qc: QuantConfig, mapper: NameMapper, ctx: BuildContext, dtype: torch.dtype):
        self.qc, self.mapper, self.ctx, self.dtype = qc, mapper, ctx, dtype

    def ckpt(self, engine_name: str) -> str:
        return self.mapper.to_checkpoint(engine_name)

    def shard_names(self, name: str) -> list[str]:
        prefix, _, last = name.rpartition(".")
        shards = self.ctx.packed.get(last)
        return [f"{prefix}.{s}" for s in shards] if shards else [name]

    def linear(self, name: str, k: int, rows: list[int], bias: bool = False) -> QLinear:
        shards = self.shard_names(name)
        if len(shards) != len(rows):
            raise AssertionError(f"{name}: {len(rows)} output blocks but shards {shards}")
        res = self.qc.resolve(name, self.ctx.packed)
        return QLinear(k, rows, [[self.ckpt(s) for s in shards]], res, self.dtype, bias=bias)

    def plain(self, name: str, k: int, n: int, bias: bool = False, weight_dtype=None) -> PlainLinear:
        # Not quantization-aware: the config's scheme says how the CHECKPOINT stores it (dequantized at load).
        return PlainLinear(k, n, self.ckpt(name), self.qc.resolve(name, {}), self.dtype, bias, weight_dtype)

    def weight(self, name: str, shape, dtype=None, kind: str = "weight", source: str | None = None) -> Weight:
        return Weight(tuple(shape), source or self.ckpt(name) + ".weight", dtype or self.dtype, kind)

    def resolve_all(self, module: str, names: list[str]) -> Resolution:
        """One scheme for a group of modules (all routed experts); disagreement is an error."""
        seen: dict = {}
        for n in names:
            r = self.qc.resolve(n, {})
            seen.setdefault(r.scheme, (n, r))
        if len(seen) > 1:
            detail = "; ".join(f"{n}: {r.scheme} ({r.decided_by})" for n, r in seen.values())
            raise QuantConfigError(f"{self.qc.origin}: {module}: experts must share one scheme, found {detail}")
        return next(iter(seen.values()))[1]

    def experts(self, prefix: str, n_routed: int, hidden: int, inter: int, shared: str | None) -> tuple[QLinear, QLinear]:
        """Stacked expert weights; with `shared` (engine prefix of the shared expert), that expert is
        fused in as slot `n_routed`."""
        groups = [f"{prefix}.{e}" for e in range(n_routed)] + ([shared] if shared else [])
        res = self.resolve_all(prefix, [f"{prefix}.{e}.{p}" for e in range(n_routed) for p in ("gate_proj", "up_proj", "down_proj")])
        w13 = QLinear(hidden, [inter, inter], [[self.ckpt(f"{g}.gate_proj"), self.ckpt(f"{g}.up_proj")] for g in groups],
                      res, self.dtype, stacked=True)
        w2 = QLinear(inter, [hidden], [[self.ckpt(f"{g}.down_proj")] for g in groups], res, self.dtype, stacked=True)
        return w13, w2


class MLP(nn.Module):
    """SiLU-gated MLP with gate/up fused into `gate_up_proj`."""

    def __init__(self, b: Builder, prefix: str, hidden: int, inter: int):
        super().__init__()
        self.inter = inter
        self.gate_up_proj = b.linear(f"{prefix}.gate_up_proj", hidden, [inter, inter])
        self.down_proj = b.linear(f"{prefix}.down_proj", inter, [hidden])

    def forward(self, x):
        gate, up = self.gate_up_proj(x).split(self.inter, dim=-1)
        return self.down_proj(nn.functional.silu(gate) * up)


MOE_OPS = {"unquantized": "moe", "mxfp4": "mxfp4_moe", "nvfp4": "nvfp4_moe", "fp8": "fp8_moe"}


def run_experts(owner: nn.Module, w13: QLinear, w2: QLinear, x: torch.Tensor, weights, ids) -> torch.Tensor:
    """Call the MoE op for the experts' scheme (routing already done)."""
    s = w13.scheme
    op = MOE_OPS[s.format]
    # quantized experts run the backend selected for their layout (post-load transforms set it on both)
    if w13.layout != w2.layout:
        raise RuntimeError(f"{s.format} experts: w13 is in layout {w13.layout!r} but w2 in {w2.layout!r}")
    if s.format == "unquantized":
        return call_op(owner, op, x, w13.weight, w2.weight, weights, ids)
    if s.format == "mxfp4":
        return call_op(w13, op, x, w13.weight, w13.weight_scale, w2.weight, w2.weight_scale, weights, ids,
                       act_qdq=s.activation == "mxfp4")
    if s.format == "nvfp4":
        # keyed on the experts' layout flag (kernel layouts are applied in place, nvfp4_layout.py)
        from ..quant import nvfp4_layout

        return nvfp4_layout.moe_forward(w13, w2, x, weights, ids)
    # fp8: scales per tensor [E, shards] or per channel [E, rows, 1] (the op takes both); activations
    # static (one input scale for all experts: the max, as sglang; activations are quantized before
    # dispatch), dynamic per token (FP8_DYNAMIC), or none
    act = {}
    if s.activation == "fp8":
        act = {"w13_input_scale": w13.input_scale.max(), "w2_input_scale": w2.input_scale.max()}
    elif s.activation == "fp8_dynamic":
        act = {"act_dynamic": True}
    return call_op(owner, op, x, w13.weight, w13.weight_scale, w2.weight, w2.weight_scale, weights, ids, **act)


def grouped_topk(logits: torch.Tensor, bias: torch.Tensor | None, top_k: int, n_group: int, topk_group: int,
                 norm: bool, scale: float, scoring: str = "sigmoid") -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V3 routing: sigmoid scores (+ correction bias for the choice only), best groups by
    the sum of their top-2 scores, top-k inside them; weights renormalized and scaled."""
    scores = logits.float().sigmoid() if scoring == "sigmoid" else logits.float().softmax(-1)
    choice = scores + bias.float() if bias is not None else scores
    t, e = choice.shape
    if n_group > 1:
        group_scores = choice.view(t, n_group, e // n_group).topk(min(2, e // n_group), dim=-1)[0].sum(-1)
        keep = torch.zeros_like(group_scores).scatter_(1, group_scores.topk(topk_group, dim=-1)[1], 1.0)
        mask = keep.unsqueeze(-1).expand(t, n_group, e // n_group).reshape(t, e)
        choice = choice.masked_fill(mask == 0, float("-inf"))
    ids = choice.topk(top_k, dim=-1)[1]
    weights = scores.gather(1, ids)
    if norm:
        weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
    return weights * scale, ids


def rope_cos_sin(positions: torch.Tensor, dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device) / dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    return freqs.cos(), freqs.sin()  # [T, dim/2]


def rope_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x0, x1), (x2, x3)...; outputs the rotated evens then odds (same as HF DeepSeek)."""
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def rope_half(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate halves (x[:d/2], x[d/2:]) (Llama/Qwen style)."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d].float(), x[..., d:].float()
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """[B, H, T, D] attention with a causal mask and a float32 softmax."""
    t = q.shape[-2]
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    mask = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    scores = scores.masked_fill(mask, float("-inf"))
    return torch.matmul(scores.softmax(-1), v.float()).to(q.dtype)


def yarn_mscale(rope: dict | None, scale: float) -> float:
    rope = rope or {}
    if rope.get("rope_type", rope.get("type", "default")) in ("default", None):
        return scale
    factor, m = rope.get("factor", 1.0), rope.get("mscale_all_dim", 0)
    if m and factor > 1:
        ms = 0.1 * m * math.log(factor) + 1.0
        return scale * ms * ms
    return scale


def norm(module: Weight, x: torch.Tensor, eps: float) -> torch.Tensor:
    return rms_norm(x, module.weight, eps)


def fusion_record(ctx: BuildContext, fusion: Fusion) -> None:
    ctx.fusion = fusion.as_dict()
