"""FLUX diffusion transformer (diffusers' FluxTransformer2DModel), engine names = diffusers names.

Checkpoint: the transformer folder's `config.json` (`_class_name: "FluxTransformer2DModel"`) and
`diffusion_pytorch_model.safetensors`. Forward: latents + text embeddings + pooled text + timestep
(+ guidance) + image/text position ids -> noise prediction (float32).

Quantization: every attention/FF projection and the embedders/`proj_out` are quant-aware `QLinear`s;
the AdaLayerNorm projections (`norm1.linear`, `norm1_context.linear`, single blocks' `norm.linear`,
`norm_out.linear`) are `PlainLinear`s, so an FP8 checkpoint tensor landing there is dequantized at load
(sglang#20082). q/k/v are NOT fused: each projection keeps its own weight_scale and input_scale,
exactly as exported, so no scale is merged or requantized.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import CheckpointError
from ..layers import rms_norm
from . import BuildContext, Family, register
from .common import Builder

ARCH = "FluxTransformer2DModel"
TIME_CHANNELS = 256  # diffusers' Timesteps(num_channels=256)


@register
class FluxFamily(Family):
    name = "flux"
    architectures = (ARCH,)
    model_types = (ARCH,)  # matched against config `_class_name`
    PACKED = ()  # no fused modules (see module docstring)

    @classmethod
    def build(cls, config: dict, qc, args, ctx: BuildContext) -> "FluxTransformer":
        b = Builder(qc, cls.mapper(config), ctx, args.dtype)
        ctx.notes.append("FLUX: q/k/v projections are not fused; each keeps its own weight_scale and input_scale")
        return FluxTransformer(b, FluxConfig(config))


class FluxConfig:
    def __init__(self, raw: dict):
        self.raw = raw
        get = self._get
        self.heads, self.head_dim = get("num_attention_heads"), get("attention_head_dim")
        self.dim = self.heads * self.head_dim
        self.in_channels = get("in_channels")
        self.patch = raw.get("patch_size", 1) or 1
        self.out_channels = raw.get("out_channels") or self.in_channels
        self.joint_dim, self.pooled_dim = get("joint_attention_dim"), get("pooled_projection_dim")
        self.layers, self.single_layers = get("num_layers"), get("num_single_layers")
        self.guidance = bool(raw.get("guidance_embeds", False))
        self.axes = list(raw.get("axes_dims_rope", (16, 56, 56)))
        if sum(self.axes) != self.head_dim or any(a % 2 for a in self.axes):
            raise CheckpointError(f"config.json: axes_dims_rope {self.axes} must be even sizes summing to "
                                  f"attention_head_dim {self.head_dim}")

    def _get(self, key):
        if key not in self.raw:
            raise CheckpointError(f"config.json: field {key!r} is missing (needed by {ARCH})")
        return self.raw[key]


# --- math pieces (diffusers' definitions, written out) ------------------------------------------------
def layer_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return nn.functional.layer_norm(x, x.shape[-1:], eps=eps)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.gelu(x, approximate="tanh")


def timestep_embedding(t: torch.Tensor, dim: int = TIME_CHANNELS, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding, cos half first (flip_sin_to_cos=True, downscale_freq_shift=0)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None, :]
    return torch.cat([args.cos(), args.sin()], dim=-1)


def rope_tables(ids: torch.Tensor, axes: list[int], theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-axis rotary tables over position ids [S, n_axes], each frequency repeated for its pair."""
    cos, sin = [], []
    pos = ids.float()
    f64 = torch.float64 if ids.device.type not in ("mps", "npu") else torch.float32
    for i, d in enumerate(axes):
        inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=f64, device=ids.device) / d)
        freqs = torch.outer(pos[:, i].to(f64), inv)
        cos.append(freqs.cos().repeat_interleave(2, dim=1).float())
        sin.append(freqs.sin().repeat_interleave(2, dim=1).float())
    return torch.cat(cos, dim=-1), torch.cat(sin, dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, S, H, D]: rotate interleaved pairs (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin)."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    return (x.float() * cos[None, :, None, :] + rotated * sin[None, :, None, :]).to(x.dtype)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[B, S, H, D] full (non-causal) attention -> [B, S, H*D]."""
    out = nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2).flatten(2)


# --- modules -----------------------------------------------------------------------------------------
class MLPEmbedder(nn.Module):
    """linear_1 -> SiLU -> linear_2 (TimestepEmbedding, PixArtAlphaTextProjection with silu)."""

    def __init__(self, b: Builder, p: str, k: int, n: int):
        super().__init__()
        self.linear_1 = b.linear(f"{p}.linear_1", k, [n], bias=True)
        self.linear_2 = b.linear(f"{p}.linear_2", n, [n], bias=True)

    def forward(self, x):
        return self.linear_2(nn.functional.silu(self.linear_1(x)))


class TimeTextEmbed(nn.Module):
    def __init__(self, b: Builder, c: FluxConfig):
        super().__init__()
        p = "time_text_embed"
        self.timestep_embedder = MLPEmbedder(b, f"{p}.timestep_embedder", TIME_CHANNELS, c.dim)
        self.guidance_embedder = MLPEmbedder(b, f"{p}.guidance_embedder", TIME_CHANNELS, c.dim) if c.guidance else None
        self.text_embedder = MLPEmbedder(b, f"{p}.text_embedder", c.pooled_dim, c.dim)

    def forward(self, timestep, guidance, pooled):
        emb = self.timestep_embedder(timestep_embedding(timestep).to(pooled.dtype))
        if self.guidance_embedder is not None:
            emb = emb + self.guidance_embedder(timestep_embedding(guidance).to(pooled.dtype))
        return emb + self.text_embedder(pooled)


class AdaNorm(nn.Module):
    """AdaLayerNorm(Zero/ZeroSingle/Continuous): `linear(silu(temb))` chunks modulate a LayerNorm.
    `linear` is not quantization-aware (a PlainLinear)."""

    def __init__(self, b: Builder, p: str, dim: int, chunks: int):
        super().__init__()
        self.chunks = chunks
        self.linear = b.plain(f"{p}.linear", dim, chunks * dim, bias=True)

    def mods(self, temb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(nn.functional.silu(temb)).chunk(self.chunks, dim=-1)


def modulate(x, shift, scale):
    return layer_norm(x) * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Joint attention: image q/k/v (+ context add_*_proj in double blocks), RMS q/k norms, rope."""

    def __init__(self, b: Builder, p: str, c: FluxConfig, joint: bool):
        super().__init__()
        d, self.hd, self.eps = c.dim, c.head_dim, 1e-6
        for n in ("to_q", "to_k", "to_v"):
            setattr(self, n, b.linear(f"{p}.{n}", d, [d], bias=True))
        norms = ("norm_q", "norm_k")
        self.joint = joint
        if joint:
            for n in ("add_q_proj", "add_k_proj", "add_v_proj"):
                setattr(self, n, b.linear(f"{p}.{n}", d, [d], bias=True))
            self.to_out = nn.ModuleList([b.linear(f"{p}.to_out.0", d, [d], bias=True)])
            self.to_add_out = b.linear(f"{p}.to_add_out", d, [d], bias=True)
            norms += ("norm_added_q", "norm_added_k")
        for n in norms:
            setattr(self, n, b.weight(f"{p}.{n}", (c.head_dim,), kind="norm"))

    def _heads(self, lin, norm, x):
        y = lin(x).unflatten(-1, (-1, self.hd))
        return y if norm is None else rms_norm(y, norm.weight, self.eps)

    def forward(self, x, ctx, cos, sin):
        q, k, v = self._heads(self.to_q, self.norm_q, x), self._heads(self.to_k, self.norm_k, x), \
            self._heads(self.to_v, None, x)
        if self.joint:
            q = torch.cat([self._heads(self.add_q_proj, self.norm_added_q, ctx), q], dim=1)
            k = torch.cat([self._heads(self.add_k_proj, self.norm_added_k, ctx), k], dim=1)
            v = torch.cat([self._heads(self.add_v_proj, None, ctx), v], dim=1)
        out = attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v).to(x.dtype)
        if not self.joint:
            return out
        n_ctx = ctx.shape[1]
        return self.to_out[0](out[:, n_ctx:]), self.to_add_out(out[:, :n_ctx])


class FeedForward(nn.Module):
    """`net.0.proj` -> GELU(tanh) -> `net.2` (net.1 is dropout)."""

    def __init__(self, b: Builder, p: str, dim: int, inner: int):
        super().__init__()
        gelu = nn.Module()
        gelu.proj = b.linear(f"{p}.net.0.proj", dim, [inner], bias=True)
        self.net = nn.ModuleList([gelu, nn.Identity(), b.linear(f"{p}.net.2", inner, [dim], bias=True)])

    def forward(self, x):
        return self.net[2](gelu_tanh(self.net[0].proj(x)))


class DoubleBlock(nn.Module):
    def __init__(self, b: Builder, i: int, c: FluxConfig):
        super().__init__()
        p = f"transformer_blocks.{i}"
        self.norm1 = AdaNorm(b, f"{p}.norm1", c.dim, 6)
        self.norm1_context = AdaNorm(b, f"{p}.norm1_context", c.dim, 6)
        self.attn = Attention(b, f"{p}.attn", c, joint=True)
        self.ff = FeedForward(b, f"{p}.ff", c.dim, 4 * c.dim)
        self.ff_context = FeedForward(b, f"{p}.ff_context", c.dim, 4 * c.dim)

    def forward(self, x, ctx, temb, cos, sin):
        sh, sc, g, sh2, sc2, g2 = self.norm1.mods(temb)
        csh, csc, cg, csh2, csc2, cg2 = self.norm1_context.mods(temb)
        a, ca = self.attn(modulate(x, sh, sc), modulate(ctx, csh, csc), cos, sin)
        x = x + g[:, None] * a
        x = x + g2[:, None] * self.ff(modulate(x, sh2, sc2))
        ctx = ctx + cg[:, None] * ca
        ctx = ctx + cg2[:, None] * self.ff_context(modulate(ctx, csh2, csc2))
        return x, ctx


class SingleBlock(nn.Module):
    def __init__(self, b: Builder, i: int, c: FluxConfig):
        super().__init__()
        p = f"single_transformer_blocks.{i}"
        self.norm = AdaNorm(b, f"{p}.norm", c.dim, 3)
        self.proj_mlp = b.linear(f"{p}.proj_mlp", c.dim, [4 * c.dim], bias=True)
        self.attn = Attention(b, f"{p}.attn", c, joint=False)
        self.proj_out = b.linear(f"{p}.proj_out", 5 * c.dim, [c.dim], bias=True)

    def forward(self, h, temb, cos, sin):
        sh, sc, g = self.norm.mods(temb)
        y = modulate(h, sh, sc)
        out = self.proj_out(torch.cat([self.attn(y, None, cos, sin), gelu_tanh(self.proj_mlp(y))], dim=-1))
        return h + g[:, None] * out


class FluxTransformer(nn.Module):
    family = "flux"

    def __init__(self, b: Builder, c: FluxConfig):
        super().__init__()
        self.cfg = c
        self.x_embedder = b.linear("x_embedder", c.in_channels, [c.dim], bias=True)
        self.context_embedder = b.linear("context_embedder", c.joint_dim, [c.dim], bias=True)
        self.time_text_embed = TimeTextEmbed(b, c)
        self.transformer_blocks = nn.ModuleList(DoubleBlock(b, i, c) for i in range(c.layers))
        self.single_transformer_blocks = nn.ModuleList(SingleBlock(b, i, c) for i in range(c.single_layers))
        self.norm_out = AdaNorm(b, "norm_out", c.dim, 2)
        self.proj_out = b.linear("proj_out", c.dim, [c.patch * c.patch * c.out_channels], bias=True)

    def forward(self, hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids,
                guidance=None) -> torch.Tensor:
        c = self.cfg
        if c.guidance and guidance is None:
            raise ValueError("forward: this FLUX transformer has guidance_embeds=true; pass `guidance`")
        dtype = self.x_embedder.bias.dtype
        x = self.x_embedder(hidden_states.to(dtype))
        t = timestep.to(dtype) * 1000  # diffusers scales after casting to the hidden dtype
        g = guidance.to(dtype) * 1000 if c.guidance else None
        temb = self.time_text_embed(t, g, pooled_projections.to(dtype))
        ctx = self.context_embedder(encoder_hidden_states.to(dtype))
        txt_ids = txt_ids[0] if txt_ids.dim() == 3 else txt_ids
        img_ids = img_ids[0] if img_ids.dim() == 3 else img_ids
        cos, sin = rope_tables(torch.cat([txt_ids, img_ids], dim=0), c.axes)
        for block in self.transformer_blocks:
            x, ctx = block(x, ctx, temb, cos, sin)
        n_ctx = ctx.shape[1]
        h = torch.cat([ctx, x], dim=1)
        for block in self.single_transformer_blocks:
            h = block(h, temb, cos, sin)
        x = h[:, n_ctx:]
        scale, shift = self.norm_out.mods(temb)  # AdaLayerNormContinuous: scale first
        return self.proj_out(modulate(x, shift, scale)).float()
