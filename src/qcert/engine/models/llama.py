"""Llama family (LlamaForCausalLM): a small dense model. Engine names fuse q/k/v into `qkv_proj`
and gate/up into `gate_up_proj`, as serving engines do; exclude entries stay in checkpoint names."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CheckpointError
from . import BuildContext, Family, register
from .common import MLP, Builder, Cfg, causal_attention, norm, rope_cos_sin, rope_half

PACKED = (("qkv_proj", ("q_proj", "k_proj", "v_proj")), ("gate_up_proj", ("gate_proj", "up_proj")))
ARCH = "LlamaForCausalLM"


@register
class LlamaFamily(Family):
    name = "llama"
    architectures = (ARCH,)
    model_types = ("llama",)
    PACKED = PACKED

    @classmethod
    def create(cls, b: Builder, c: Cfg, config: dict, args, ctx: BuildContext) -> "LlamaForCausalLM":
        return LlamaForCausalLM(b, c)


class Attention(nn.Module):
    def __init__(self, b: Builder, p: str, c: Cfg):
        super().__init__()
        self.h, self.kv = c.num_attention_heads, c.get("num_key_value_heads") or c.num_attention_heads
        self.d = c.get("head_dim") or c.hidden_size // self.h
        if self.h % self.kv:
            raise CheckpointError(f"config.json: num_attention_heads {self.h} is not a multiple of "
                                  f"num_key_value_heads {self.kv}")
        bias = bool(c.get("attention_bias", False))
        self.qkv_proj = b.linear(f"{p}.qkv_proj", c.hidden_size, [self.h * self.d, self.kv * self.d, self.kv * self.d], bias=bias)
        self.o_proj = b.linear(f"{p}.o_proj", self.h * self.d, [c.hidden_size], bias=bias)

    def forward(self, x, cos, sin):
        bsz, t, _ = x.shape
        q, k, v = self.qkv_proj(x).split([self.h * self.d, self.kv * self.d, self.kv * self.d], dim=-1)
        q = rope_half(q.view(bsz, t, self.h, self.d).transpose(1, 2), cos, sin)
        k = rope_half(k.view(bsz, t, self.kv, self.d).transpose(1, 2), cos, sin)
        v = v.view(bsz, t, self.kv, self.d).transpose(1, 2)
        rep = self.h // self.kv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        o = causal_attention(q, k, v, self.d ** -0.5)
        return self.o_proj(o.transpose(1, 2).reshape(bsz, t, self.h * self.d))


class Layer(nn.Module):
    def __init__(self, b: Builder, i: int, c: Cfg):
        super().__init__()
        p = f"model.layers.{i}"
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.input_layernorm = b.weight(f"{p}.input_layernorm", (c.hidden_size,), kind="norm")
        self.self_attn = Attention(b, f"{p}.self_attn", c)
        self.post_attention_layernorm = b.weight(f"{p}.post_attention_layernorm", (c.hidden_size,), kind="norm")
        self.mlp = MLP(b, f"{p}.mlp", c.hidden_size, c.intermediate_size)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(norm(self.input_layernorm, x, self.eps), cos, sin)
        return x + self.mlp(norm(self.post_attention_layernorm, x, self.eps))


class LlamaForCausalLM(nn.Module):
    family = "llama"

    def __init__(self, b: Builder, c: Cfg):
        super().__init__()
        self.cfg, self.eps = c, c.get("rms_norm_eps", 1e-6)
        if c.get("tie_word_embeddings", False):
            raise CheckpointError("config.json: tie_word_embeddings=true is not supported by qcert's Llama")
        rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
            raise CheckpointError(f"config.json: rope type {rope.get('rope_type')!r} is not supported (default only)")
        self.theta = rope.get("rope_theta", c.get("rope_theta", 10000.0))
        self.head_dim = c.get("head_dim") or c.hidden_size // c.num_attention_heads
        self.model = nn.Module()
        self.model.embed_tokens = b.weight("model.embed_tokens", (c.vocab_size, c.hidden_size), kind="embedding")
        self.model.layers = nn.ModuleList(Layer(b, i, c) for i in range(c.num_hidden_layers))
        self.model.norm = b.weight("model.norm", (c.hidden_size,), kind="norm")
        self.lm_head = b.linear("lm_head", c.hidden_size, [c.vocab_size])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        x = nn.functional.embedding(input_ids, self.model.embed_tokens.weight)
        cos, sin = rope_cos_sin(torch.arange(t, device=input_ids.device), self.head_dim, self.theta)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(norm(self.model.norm, x, self.eps)).float()
