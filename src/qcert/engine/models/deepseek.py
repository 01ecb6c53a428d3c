"""DeepSeek-V3 family: DeepseekV3ForCausalLM, GlmMoeDsaForCausalLM (GLM-5: MLA + DSA indexer) and
KimiK25ForConditionalGeneration (Kimi-K2.5: a DeepSeek-V3 text model under `language_model.`).

Engine names fuse `q_a_proj` + `kv_a_proj_with_mqa` into `fused_qkv_a_proj_with_mqa` and
`gate_proj` + `up_proj` into `gate_up_proj`, as serving engines do: that renaming is exactly what
exclude lists written in checkpoint names must survive.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CheckpointError
from .. import fusion  # looked up at call time so mutants can patch it
from ..quant.scheme import UNQUANTIZED
from . import BuildContext, Family, register
from .common import (MLP, Builder, Cfg, causal_attention, grouped_topk, norm, rope_cos_sin, rope_half,
                     rope_interleaved, run_experts, yarn_mscale)

PACKED = (
    ("fused_qkv_a_proj_with_mqa", ("q_a_proj", "kv_a_proj_with_mqa")),
    ("gate_up_proj", ("gate_proj", "up_proj")),
)
KIMI = "KimiK25ForConditionalGeneration"
GLM = "GlmMoeDsaForCausalLM"
DSV3 = "DeepseekV3ForCausalLM"
ARCH_BY_MODEL_TYPE = {"deepseek_v3": DSV3, "glm_moe_dsa": GLM, "kimi_k25": KIMI}


@register
class DeepseekFamily(Family):
    name = "deepseek"
    architectures = (DSV3, GLM, KIMI)
    model_types = tuple(ARCH_BY_MODEL_TYPE)
    PACKED = PACKED
    BY_MODEL_TYPE = ARCH_BY_MODEL_TYPE
    # Kimi-K2.5 keeps the text model under `language_model.`; the engine's text model is unprefixed.
    WRAPPERS = {KIMI: ("language_model.", "")}

    @classmethod
    def create(cls, b: Builder, c: Cfg, config: dict, args, ctx: BuildContext) -> "DeepseekForCausalLM":
        model = DeepseekForCausalLM(b, c, config.get("architectures"), args, ctx)
        if c.arch == KIMI:
            for prefix, what in (("vision_tower.", "vision tower"), ("mm_projector.", "multimodal projector")):
                ctx.skipped[prefix] = f"{what}: qcert certifies the text path of multimodal wrappers"
        return model


def is_moe_layer(c: Cfg, i: int) -> bool:
    types = c.get("mlp_layer_types")
    if types:
        return types[i] == "sparse"
    return bool(c.get("n_routed_experts")) and i >= c.get("first_k_dense_replace", 0) and \
        i % c.get("moe_layer_freq", 1) == 0


class Attention(nn.Module):
    """Multi-head latent attention. Until the MLA post-load hook runs it expands K/V through
    kv_b_proj; afterwards it uses the absorbed form with `w_kc` / `w_vc` (same result)."""

    def __init__(self, b: Builder, p: str, c: Cfg, i: int):
        super().__init__()
        self.h, self.nope, self.rope, self.v = c.num_attention_heads, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim
        self.q_lora, self.kv_lora, self.eps = c.q_lora_rank, c.kv_lora_rank, c.get("rms_norm_eps", 1e-6)
        if self.q_lora is None:
            raise CheckpointError(f"config.json: q_lora_rank is null; qcert's MLA needs the q_a/q_b projections")
        hd = self.nope + self.rope
        self.fused_qkv_a_proj_with_mqa = b.linear(f"{p}.fused_qkv_a_proj_with_mqa", c.hidden_size,
                                                  [self.q_lora, self.kv_lora + self.rope])
        self.q_a_layernorm = b.weight(f"{p}.q_a_layernorm", (self.q_lora,), kind="norm")
        self.q_b_proj = b.linear(f"{p}.q_b_proj", self.q_lora, [self.h * hd])
        self.kv_a_layernorm = b.weight(f"{p}.kv_a_layernorm", (self.kv_lora,), kind="norm")
        self.kv_b_proj = b.linear(f"{p}.kv_b_proj", self.kv_lora, [self.h * (self.nope + self.v)])
        self.o_proj = b.linear(f"{p}.o_proj", self.h * self.v, [c.hidden_size])
        self.interleave = c.arch == GLM or c.get("rope_interleave", True)
        self.scale = yarn_mscale(c.get("rope_parameters") or c.get("rope_scaling"), hd ** -0.5)
        self.w_kc = self.w_vc = None  # set by the MLA post-load hook
        if c.arch == GLM and (c.get("indexer_types") or ["full"] * (i + 1))[i] == "full":
            self.indexer = Indexer(b, f"{p}.indexer", c)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        bsz, t, _ = x.shape
        q_a, kv_a = self.fused_qkv_a_proj_with_mqa(x).split([self.q_lora, self.kv_lora + self.rope], dim=-1)
        q = self.q_b_proj(norm(self.q_a_layernorm, q_a, self.eps)).view(bsz, t, self.h, -1).transpose(1, 2)
        q_nope, q_rot = q.split([self.nope, self.rope], dim=-1)
        kv_nope, k_rot = kv_a.split([self.kv_lora, self.rope], dim=-1)
        kv_nope = norm(self.kv_a_layernorm, kv_nope, self.eps)
        rot = rope_interleaved if self.interleave else rope_half
        q_rot, k_rot = rot(q_rot, cos, sin), rot(k_rot.unsqueeze(1), cos, sin)
        if self.w_kc is not None:
            out = self._absorbed(q_nope, q_rot, kv_nope, k_rot)
        else:
            kv = self.kv_b_proj(kv_nope).view(bsz, t, self.h, -1).transpose(1, 2)
            k_nope, v = kv.split([self.nope, self.v], dim=-1)
            k = torch.cat([k_nope, k_rot.expand(-1, self.h, -1, -1)], dim=-1)
            out = causal_attention(torch.cat([q_nope, q_rot], dim=-1), k, v, self.scale)
        return self.o_proj(out.transpose(1, 2).reshape(bsz, t, -1))

    def _absorbed(self, q_nope, q_rot, kv_nope, k_rot):
        # scores = q_nope·(W_kc c) + q_rot·k_rot = (q_nope W_kc)·c + ...; values = W_vc (attn · c)
        q_lat = torch.einsum("bhtd,hdk->bhtk", q_nope.float(), self.w_kc.float())
        q = torch.cat([q_lat, q_rot.float()], dim=-1)
        k = torch.cat([kv_nope.float(), k_rot.squeeze(1).float()], dim=-1).unsqueeze(1)
        lat = causal_attention(q, k, kv_nope.float().unsqueeze(1), self.scale)
        return torch.einsum("bhtk,hvk->bhtv", lat, self.w_vc.float()).to(q_nope.dtype)


class Indexer(nn.Module):
    """GLM-5's DSA indexer weights. qcert's attention is dense, which equals DSA exactly while the
    sequence length is <= index_topk (every token is selected); forward refuses longer inputs."""

    def __init__(self, b: Builder, p: str, c: Cfg):
        super().__init__()
        heads, dim = c.index_n_heads, c.index_head_dim
        self.wq_b = b.linear(f"{p}.wq_b", c.q_lora_rank, [heads * dim])
        self.wk = b.linear(f"{p}.wk", c.hidden_size, [dim])
        self.k_norm = b.weight(f"{p}.k_norm", (dim,), kind="norm")
        self.k_norm_bias = b.weight(f"{p}.k_norm_bias", (dim,), kind="norm", source=b.ckpt(f"{p}.k_norm") + ".bias")
        self.weights_proj = b.plain(f"{p}.weights_proj", c.hidden_size, heads, weight_dtype=torch.float32)


class MoE(nn.Module):
    def __init__(self, b: Builder, p: str, c: Cfg, fuse_shared: bool):
        super().__init__()
        self.n_routed, self.top_k = c.n_routed_experts, c.num_experts_per_tok
        self.n_group, self.topk_group = c.get("n_group", 1) or 1, c.get("topk_group", 1) or 1
        self.norm_topk, self.scale = c.get("norm_topk_prob", True), c.get("routed_scaling_factor", 1.0)
        self.gate = b.plain(f"{p}.gate", c.hidden_size, self.n_routed)
        self.gate_bias = b.weight(f"{p}.gate_bias", (self.n_routed,), dtype=torch.float32, kind="router-bias",
                                  source=b.ckpt(f"{p}.gate") + ".e_score_correction_bias")
        inter = c.moe_intermediate_size
        shared = f"{p}.shared_experts" if fuse_shared else None
        self.experts_w13, self.experts_w2 = b.experts(f"{p}.experts", self.n_routed, c.hidden_size, inter, shared)
        self.fused = fuse_shared
        n_shared = c.get("n_shared_experts") or 0
        self.shared_experts = None if fuse_shared or not n_shared else MLP(b, f"{p}.shared_experts", c.hidden_size, inter * n_shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        logits = nn.functional.linear(flat.float(), self.gate.weight.float())
        weights, ids = grouped_topk(logits, self.gate_bias.weight, self.top_k, self.n_group, self.topk_group,
                                    self.norm_topk, self.scale)
        if self.fused:
            # The shared expert is slot n_routed, always selected; routed weights already carry the
            # routed scaling factor, so weight 1 reproduces `routed + shared` exactly.
            ids = torch.cat([ids, torch.full_like(ids[:, :1], self.n_routed)], dim=1)
            weights = torch.cat([weights, torch.ones_like(weights[:, :1])], dim=1)
        out = run_experts(self, self.experts_w13, self.experts_w2, flat, weights, ids)
        if self.shared_experts is not None:
            out = out + self.shared_experts(flat)
        return out.reshape(shape)


class Layer(nn.Module):
    def __init__(self, b: Builder, i: int, c: Cfg, fuse_shared: bool):
        super().__init__()
        p = f"model.layers.{i}"
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.input_layernorm = b.weight(f"{p}.input_layernorm", (c.hidden_size,), kind="norm")
        self.self_attn = Attention(b, f"{p}.self_attn", c, i)
        self.post_attention_layernorm = b.weight(f"{p}.post_attention_layernorm", (c.hidden_size,), kind="norm")
        moe = is_moe_layer(c, i)
        self.mlp = MoE(b, f"{p}.mlp", c, fuse_shared) if moe else MLP(b, f"{p}.mlp", c.hidden_size, c.intermediate_size)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(norm(self.input_layernorm, x, self.eps), cos, sin)
        return x + self.mlp(norm(self.post_attention_layernorm, x, self.eps))


def declare_mtp(b: Builder, c: Cfg, ctx: BuildContext) -> None:
    """MTP layers follow the decoder layers in the checkpoint; they are listed, not loaded."""
    for i in range(c.get("num_nextn_predict_layers", 0) or 0):
        ctx.skipped[b.ckpt(f"model.layers.{c.num_hidden_layers + i}.")] = \
            "MTP (multi-token prediction) layer: used for speculative decoding, not by qcert's forward"


class DeepseekForCausalLM(nn.Module):
    family = "deepseek"

    def __init__(self, b: Builder, c: Cfg, architectures, args, ctx: BuildContext):
        super().__init__()
        self.arch, self.cfg = c.arch, c
        self.fusion = self._fusion(b, c, architectures, args)
        ctx.fusion = self.fusion.as_dict()
        fuse = self.fusion.shared_experts > 0
        self.model = nn.Module()  # engine names mirror the checkpoint's `model.*` / `lm_head`
        self.model.embed_tokens = b.weight("model.embed_tokens", (c.vocab_size, c.hidden_size), kind="embedding")
        self.model.layers = nn.ModuleList(Layer(b, i, c, fuse) for i in range(c.num_hidden_layers))
        self.model.norm = b.weight("model.norm", (c.hidden_size,), kind="norm")
        self.lm_head = b.linear("lm_head", c.hidden_size, [c.vocab_size])
        self.eps = c.get("rms_norm_eps", 1e-6)
        rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
        self.theta = rope.get("rope_theta", c.get("rope_theta", 10000.0))
        self.max_tokens = c.get("index_topk") if c.arch == GLM else None
        declare_mtp(b, c, ctx)
        if self.max_tokens:
            ctx.notes.append(f"GLM-5 DSA: attention is dense; this equals DSA exactly for sequences of at most "
                             f"index_topk={self.max_tokens} tokens, and longer inputs are refused")

    @staticmethod
    def _fusion(b: Builder, c: Cfg, architectures, args):
        n_shared = c.get("n_shared_experts") or 0
        moe_layers = [i for i in range(c.num_hidden_layers) if is_moe_layer(c, i)]
        if not moe_layers or not n_shared:
            return fusion.Fusion(0, "no shared experts in this model")
        # Compare schemes layer by layer; the first layer where they differ decides (else the first).
        pairs = []
        for i in moe_layers:
            routed = b.resolve_all("experts", [f"model.layers.{i}.mlp.experts.0.{p}" for p in ("gate_proj", "up_proj", "down_proj")]).scheme
            shared = b.resolve_all("shared_experts", [f"model.layers.{i}.mlp.shared_experts.{p}" for p in ("gate_proj", "up_proj", "down_proj")]).scheme
            pairs.append((routed, shared))
        routed, shared = next((p for p in pairs if p[0] != p[1]), pairs[0])
        return fusion.deepseek_fusion(args.shared_expert_fusion, architectures, c.arch, c.n_routed_experts, n_shared,
                               b.qc.method, routed, shared)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        if self.max_tokens and t > self.max_tokens:
            raise ValueError(f"input of {t} tokens exceeds index_topk={self.max_tokens}: qcert's dense attention "
                             f"equals GLM-5's DSA only up to that length")
        x = nn.functional.embedding(input_ids, self.model.embed_tokens.weight)
        cos, sin = rope_cos_sin(torch.arange(t, device=input_ids.device), self.cfg.qk_rope_head_dim, self.theta)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(norm(self.model.norm, x, self.eps)).float()
