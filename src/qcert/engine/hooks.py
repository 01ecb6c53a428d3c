"""Post-load hooks: model-specific steps after weights are in place. Each hook declares the
architectures and quant methods it applies to, and the gate checks `architectures[0]` safely."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Hook:
    name: str
    architectures: tuple[str, ...]
    quant_methods: tuple[str, ...]
    fn: Callable


HOOKS: list[Hook] = []


def post_load_hook(name: str, architectures: tuple[str, ...], quant_methods: tuple[str, ...]):
    def deco(fn):
        HOOKS.append(Hook(name, architectures, quant_methods, fn))
        return fn

    return deco


def gate(hook: Hook, architectures, quant_method: str) -> tuple[bool, str]:
    """Whether a hook runs for this checkpoint, and why (None or [] architectures never run it)."""
    if not architectures:
        return False, "config.architectures is empty or missing"
    if architectures[0] not in hook.architectures:
        return False, f"architecture {architectures[0]!r} is not one of {list(hook.architectures)}"
    if quant_method not in hook.quant_methods:
        return False, f"quant method {quant_method!r} is not one of {list(hook.quant_methods)}"
    return True, f"architecture {architectures[0]!r} with quant method {quant_method!r}"


def plan_hooks(architectures, quant_method: str) -> list[dict]:
    return [dict(name=h.name, ran=ok, reason=why) for h in HOOKS for ok, why in [gate(h, architectures, quant_method)]]


def run_hooks(model, planned: list[dict]) -> None:
    by_name = {h.name: h for h in HOOKS}
    for entry in planned:
        if entry["ran"]:
            by_name[entry["name"]].fn(model)


@post_load_hook("deepseek_v3_mla_split_kv_b", ("DeepseekV3ForCausalLM",), ("quark",))
def split_kv_b(model) -> None:
    """DeepSeek-V3 + Quark: split kv_b_proj per head into w_kc [H, nope, K] and w_vc [H, v, K] for the
    absorbed-attention path (dequantized from the checkpoint's scheme)."""
    from .quant.methods import dequantize

    for module in model.modules():
        if not hasattr(module, "kv_b_proj"):
            continue
        kv_b = module.kv_b_proj
        w = dequantize(kv_b.scheme, dict(kv_b.named_parameters()))
        w = w.view(module.h, module.nope + module.v, -1).to(kv_b.weight.device)
        dtype = model.model.embed_tokens.weight.dtype  # the model's compute dtype
        module.w_kc = w[:, : module.nope].to(dtype).contiguous()
        module.w_vc = w[:, module.nope:].to(dtype).contiguous()
