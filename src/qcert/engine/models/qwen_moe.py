"""Qwen MoE family: Qwen2MoeForCausalLM, Qwen3MoeForCausalLM and Qwen3_5MoeForConditionalGeneration.

- Qwen2-MoE: q/k/v with bias, softmax top-k routing (renormalized iff `norm_topk_prob`), one shared
  expert gated per token by sigmoid(`mlp.shared_expert_gate`(x)).
- Qwen3-MoE: adds per-head q_norm/k_norm, no attention bias, usually no shared expert.
- Qwen3.5-MoE: text model under `model.language_model.` (engine names drop `language_model.`),
  `layer_types` mixing gated-delta linear attention and gated full attention (q_proj emits query and
  an output gate per head, partial rotary), zero-centered norms (x * (1 + w)), routing always
  renormalized. Vision tower (`model.visual.`) and MTP layers (`mtp.`) are listed as skipped.

Engine names fuse q/k/v into `qkv_proj` and gate/up into `gate_up_proj`. With shared-expert fusion on
(fusion.qwen_fusion), the shared expert is routed expert slot n_routed, always selected with weight
sigmoid(shared_expert_gate(x)).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import fusion  # looked up at call time so mutants can patch it
from ..errors import CheckpointError
from ..layers import rms_norm
from . import BuildContext, Family, register
from .common import MLP, Builder, Cfg, causal_attention, rope_cos_sin, rope_half, run_experts

QWEN2, QWEN3, QWEN35 = "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM", "Qwen3_5MoeForConditionalGeneration"
ARCH_BY_MODEL_TYPE = {"qwen2_moe": QWEN2, "qwen3_moe": QWEN3, "qwen3_5_moe": QWEN35}
PACKED = (("qkv_proj", ("q_proj", "k_proj", "v_proj")), ("gate_up_proj", ("gate_proj", "up_proj")))
# Qwen3.5 checkpoint prefixes the text path does not load, listed in the report with their reason.
QWEN35_SKIPPED = {
    "model.visual.": "vision tower: qcert certifies the text path of multimodal wrappers",
    "mtp.": "MTP (multi-token prediction) layers: used for speculative decoding, not by qcert's forward",
}


@register
class QwenMoeFamily(Family):
    name = "qwen_moe"
    architectures = (QWEN2, QWEN3, QWEN35)
    model_types = tuple(ARCH_BY_MODEL_TYPE)
    PACKED = PACKED
    BY_MODEL_TYPE = ARCH_BY_MODEL_TYPE
    # Qwen3.5 keeps the text model under `model.language_model.`; engine names are `model.*`.
    WRAPPERS = {QWEN35: ("model.language_model.", "model.")}

    @classmethod
    def create(cls, b: Builder, c: Cfg, config: dict, args, ctx: BuildContext) -> "QwenMoeForCausalLM":
        model = QwenMoeForCausalLM(b, c, args, ctx)
        if c.arch == QWEN35:
            ctx.skipped.update(QWEN35_SKIPPED)
        return model


def qnorm(w: nn.Module, x: torch.Tensor, eps: float, zero_centered: bool) -> torch.Tensor:
    if not zero_centered:
        return rms_norm(x, w.weight, eps)
    xf = x.float()  # Qwen3.5: (x_normed * (1 + w)) in float32, then cast
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w.weight.float())).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, b: Builder, p: str, c: Cfg):
        super().__init__()
        self.h, self.kv = c.num_attention_heads, c.num_key_value_heads
        self.hd = c.get("head_dim") or c.hidden_size // self.h
        self.gated = c.arch == QWEN35  # q_proj emits [query | gate] per head; output *= sigmoid(gate)
        self.zc, self.eps = c.arch == QWEN35, c.get("rms_norm_eps", 1e-6)
        bias = c.get("qkv_bias", True) if c.arch == QWEN2 else bool(c.get("attention_bias", False))
        q_rows = self.h * self.hd * (2 if self.gated else 1)
        self.qkv_proj = b.linear(f"{p}.qkv_proj", c.hidden_size, [q_rows, self.kv * self.hd, self.kv * self.hd], bias=bias)
        self.o_proj = b.linear(f"{p}.o_proj", self.h * self.hd, [c.hidden_size], bias=c.arch != QWEN2 and bias)
        self.qk_norm = c.arch != QWEN2
        if self.qk_norm:
            self.q_norm = b.weight(f"{p}.q_norm", (self.hd,), kind="norm")
            self.k_norm = b.weight(f"{p}.k_norm", (self.hd,), kind="norm")
        rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
        self.rot = int(self.hd * rope.get("partial_rotary_factor", c.get("partial_rotary_factor", 1.0)))
        self.theta = rope.get("rope_theta", c.get("rope_theta", 10000.0))

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        bsz, t, _ = x.shape
        q_rows = self.h * self.hd * (2 if self.gated else 1)
        q, k, v = self.qkv_proj(x).split([q_rows, self.kv * self.hd, self.kv * self.hd], dim=-1)
        gate = None
        if self.gated:
            q, gate = q.view(bsz, t, self.h, 2 * self.hd).chunk(2, dim=-1)
            gate = gate.reshape(bsz, t, -1)
        q, k, v = q.reshape(bsz, t, self.h, self.hd), k.view(bsz, t, self.kv, self.hd), v.view(bsz, t, self.kv, self.hd)
        if self.qk_norm:
            q, k = qnorm(self.q_norm, q, self.eps, self.zc), qnorm(self.k_norm, k, self.eps, self.zc)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        cos, sin = rope_cos_sin(positions, self.rot, self.theta)
        q = torch.cat([rope_half(q[..., :self.rot], cos, sin), q[..., self.rot:]], dim=-1)
        k = torch.cat([rope_half(k[..., :self.rot], cos, sin), k[..., self.rot:]], dim=-1)
        rep = self.h // self.kv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        out = causal_attention(q, k, v, self.hd ** -0.5).transpose(1, 2).reshape(bsz, t, -1)
        if gate is not None:
            out = out * torch.sigmoid(gate)
        return self.o_proj(out)


class GatedDeltaNet(nn.Module):
    """Qwen3.5 linear attention: causal depthwise conv + SiLU over [q|k|v], L2-normalized q/k, the gated
    delta rule computed token by token (the recurrent form; equal to the chunked form up to rounding),
    a gated RMSNorm with z and out_proj."""

    def __init__(self, b: Builder, p: str, c: Cfg):
        super().__init__()
        self.nk, self.nv = c.linear_num_key_heads, c.linear_num_value_heads
        self.dk, self.dv, self.ksize = c.linear_key_head_dim, c.linear_value_head_dim, c.linear_conv_kernel_dim
        self.kdim, self.vdim, self.eps = self.nk * self.dk, self.nv * self.dv, c.get("rms_norm_eps", 1e-6)
        h = c.hidden_size
        self.in_proj_qkv = b.linear(f"{p}.in_proj_qkv", h, [2 * self.kdim + self.vdim])
        self.in_proj_z = b.linear(f"{p}.in_proj_z", h, [self.vdim])
        self.in_proj_b = b.linear(f"{p}.in_proj_b", h, [self.nv])
        self.in_proj_a = b.linear(f"{p}.in_proj_a", h, [self.nv])
        self.out_proj = b.linear(f"{p}.out_proj", self.vdim, [h])
        conv = 2 * self.kdim + self.vdim
        self.conv1d = b.weight(f"{p}.conv1d", (conv, 1, self.ksize), kind="conv")
        self.dt_bias = b.weight(f"{p}.dt_bias", (self.nv,), dtype=torch.float32, kind="weight", source=b.ckpt(f"{p}.dt_bias"))
        self.A_log = b.weight(f"{p}.A_log", (self.nv,), dtype=torch.float32, kind="weight", source=b.ckpt(f"{p}.A_log"))
        self.norm = b.weight(f"{p}.norm", (self.dv,), kind="norm")

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        bsz, t, _ = x.shape
        qkv = self.in_proj_qkv(x).transpose(1, 2)
        w = self.conv1d.weight
        qkv = nn.functional.silu(nn.functional.conv1d(qkv, w.to(qkv.dtype), padding=self.ksize - 1, groups=w.shape[0])[..., :t])
        q, k, v = qkv.transpose(1, 2).split([self.kdim, self.kdim, self.vdim], dim=-1)
        q, k = q.reshape(bsz, t, self.nk, self.dk).float(), k.reshape(bsz, t, self.nk, self.dk).float()
        v = v.reshape(bsz, t, self.nv, self.dv).float()
        beta = self.in_proj_b(x).float().sigmoid()
        g = -self.A_log.weight.float().exp() * nn.functional.softplus(self.in_proj_a(x).float() + self.dt_bias.weight.float())
        rep = self.nv // self.nk
        q, k = q.repeat_interleave(rep, dim=2), k.repeat_interleave(rep, dim=2)
        q = q * torch.rsqrt((q * q).sum(-1, keepdim=True) + 1e-6) / self.dk ** 0.5
        k = k * torch.rsqrt((k * k).sum(-1, keepdim=True) + 1e-6)
        state = torch.zeros(bsz, self.nv, self.dk, self.dv, device=x.device)
        out = torch.empty(bsz, t, self.nv, self.dv, device=x.device)
        for i in range(t):  # S <- exp(g) S; S <- S + k (beta (v - S^T k))^T; o = S^T q
            state = state * g[:, i].exp()[..., None, None]
            delta = (v[:, i] - (state * k[:, i, :, :, None]).sum(-2)) * beta[:, i, :, None]
            state = state + k[:, i, :, :, None] * delta[:, :, None, :]
            out[:, i] = (state * q[:, i, :, :, None]).sum(-2)
        out = out.to(x.dtype)
        z = self.in_proj_z(x).reshape(bsz, t, self.nv, self.dv)
        normed = rms_norm(out, self.norm.weight, self.eps) * nn.functional.silu(z.float())
        return self.out_proj(normed.to(x.dtype).reshape(bsz, t, -1))


# Module-level so mutants can patch them (looked up at call time).
def shared_gate(logits: torch.Tensor) -> torch.Tensor:
    """The shared expert's per-token weight: sigmoid of its scalar gate, in float32."""
    return torch.sigmoid(logits.float())


def fused_slot_weight(shared_w: torch.Tensor) -> torch.Tensor:
    """Weight of the fused shared-expert slot: the same gate the unfused path multiplies by (not
    DeepSeek's constant 1: Qwen's shared expert is gated)."""
    return shared_w


class MoE(nn.Module):
    def __init__(self, b: Builder, p: str, c: Cfg, fuse_shared: bool):
        super().__init__()
        self.n_routed, self.top_k = c.num_experts, c.num_experts_per_tok
        self.norm_topk = True if c.arch == QWEN35 else bool(c.get("norm_topk_prob", False))
        self.gate = b.plain(f"{p}.gate", c.hidden_size, self.n_routed)
        si = c.get("shared_expert_intermediate_size") or 0
        shared = f"{p}.shared_expert" if fuse_shared else None
        self.experts_w13, self.experts_w2 = b.experts(f"{p}.experts", self.n_routed, c.hidden_size,
                                                      c.moe_intermediate_size, shared)
        self.fused = fuse_shared
        self.shared_expert = MLP(b, f"{p}.shared_expert", c.hidden_size, si) if si > 0 and not fuse_shared else None
        self.shared_expert_gate = b.plain(f"{p}.shared_expert_gate", c.hidden_size, 1) if si > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        probs = nn.functional.linear(flat, self.gate.weight.to(flat.dtype)).float().softmax(-1)
        weights, ids = probs.topk(self.top_k, dim=-1)
        if self.norm_topk:
            weights = weights / weights.sum(-1, keepdim=True)
        shared_w = None if self.shared_expert_gate is None else shared_gate(self.shared_expert_gate(flat))
        if self.fused:
            # The shared expert is slot n_routed, always selected, weighted by its per-token gate.
            ids = torch.cat([ids, torch.full_like(ids[:, :1], self.n_routed)], dim=1)
            weights = torch.cat([weights, fused_slot_weight(shared_w)], dim=1)
        out = run_experts(self, self.experts_w13, self.experts_w2, flat, weights.to(flat.dtype), ids)
        if self.shared_expert is not None:
            out = out + (shared_w * self.shared_expert(flat).float()).to(out.dtype)
        return out.reshape(shape)


class Layer(nn.Module):
    def __init__(self, b: Builder, i: int, c: Cfg, fuse_shared: bool):
        super().__init__()
        p = f"model.layers.{i}"
        self.eps, self.zc = c.get("rms_norm_eps", 1e-6), c.arch == QWEN35
        self.input_layernorm = b.weight(f"{p}.input_layernorm", (c.hidden_size,), kind="norm")
        kind = (c.get("layer_types") or ["full_attention"] * c.num_hidden_layers)[i]
        if kind == "linear_attention":
            self.linear_attn = GatedDeltaNet(b, f"{p}.linear_attn", c)
            self.mixer = "linear_attn"
        elif kind == "full_attention":
            self.self_attn = Attention(b, f"{p}.self_attn", c)
            self.mixer = "self_attn"
        else:
            raise CheckpointError(f"config.json: layer_types[{i}] is {kind!r}; qcert knows 'full_attention', 'linear_attention'")
        self.post_attention_layernorm = b.weight(f"{p}.post_attention_layernorm", (c.hidden_size,), kind="norm")
        self.mlp = MoE(b, f"{p}.mlp", c, fuse_shared) if is_moe_layer(c, i) else \
            MLP(b, f"{p}.mlp", c.hidden_size, c.intermediate_size)

    def forward(self, x, positions):
        x = x + getattr(self, self.mixer)(qnorm(self.input_layernorm, x, self.eps, self.zc), positions)
        return x + self.mlp(qnorm(self.post_attention_layernorm, x, self.eps, self.zc))


def is_moe_layer(c: Cfg, i: int) -> bool:
    return (i not in (c.get("mlp_only_layers") or ()) and (c.get("num_experts") or 0) > 0
            and (i + 1) % (c.get("decoder_sparse_step") or 1) == 0)


class QwenMoeForCausalLM(nn.Module):
    family = "qwen_moe"

    def __init__(self, b: Builder, c: Cfg, args, ctx: BuildContext):
        super().__init__()
        self.arch, self.cfg = c.arch, c
        self.fusion = self._fusion(b, c, args)
        ctx.fusion = self.fusion.as_dict()
        fuse = self.fusion.shared_experts > 0
        self.model = nn.Module()
        self.model.embed_tokens = b.weight("model.embed_tokens", (c.vocab_size, c.hidden_size), kind="embedding")
        self.model.layers = nn.ModuleList(Layer(b, i, c, fuse) for i in range(c.num_hidden_layers))
        self.model.norm = b.weight("model.norm", (c.hidden_size,), kind="norm")
        self.lm_head = b.linear("lm_head", c.hidden_size, [c.vocab_size])
        self.eps, self.zc = c.get("rms_norm_eps", 1e-6), c.arch == QWEN35
        if c.arch == QWEN35:
            ctx.notes.append("Qwen3.5: text path only; positions are text positions (multimodal rope sections "
                             "coincide for text); linear attention runs the recurrent gated-delta form")

    @staticmethod
    def _fusion(b: Builder, c: Cfg, args) -> "fusion.Fusion":
        moe_layers = [i for i in range(c.num_hidden_layers) if is_moe_layer(c, i)]
        si = c.get("shared_expert_intermediate_size") or 0
        if not moe_layers:
            return fusion.Fusion(0, "no MoE layers in this model")
        routed = shared = None
        if isinstance(si, int) and si > 0:
            # Schemes layer by layer; the first layer where they differ decides (else the first).
            pairs = []
            for i in moe_layers:
                m = f"model.layers.{i}.mlp"
                pairs.append((b.resolve_all("experts", [f"{m}.experts.0.{p}" for p in ("gate_proj", "up_proj", "down_proj")]).scheme,
                              b.resolve_all("shared_expert", [f"{m}.shared_expert.{p}" for p in ("gate_proj", "up_proj", "down_proj")]).scheme))
            routed, shared = next((p for p in pairs if p[0] != p[1]), pairs[0])
        return fusion.qwen_fusion(args.shared_expert_fusion, si, c.moe_intermediate_size, list(b.qc.entries),
                                  routed, shared)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = nn.functional.embedding(input_ids, self.model.embed_tokens.weight)
        for layer in self.model.layers:
            x = layer(x, positions)
        return self.lm_head(qnorm(self.model.norm, x, self.eps, self.zc)).float()
