"""Kernel ops and their torch references (backend "torch").

References compute in float32 and return x.dtype. They are written to be obviously correct, not
fast: MoE references loop over the experts that were actually selected. Backends registered for
an op must match these within kernels/tolerances.py.

Linear ops: x[..., K] @ W[N, K]^T (+ bias) -> [..., N].
MoE ops: x[T, H]; w13[E, 2I, H] rows [gate; up]; w2[E, H, I];
  out[t] = sum_j topk_weights[t, j] * w2[e] @ (silu(gate_e x_t) * up_e x_t), e = topk_ids[t, j].
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import layouts
from .fp8 import dequantize_fp8, qdq_fp8, qdq_fp8_per_token
from .mxfp4 import dequantize_mxfp4, qdq_mxfp4
from .nvfp4 import dequantize_nvfp4, qdq_nvfp4
from .registry import define_op

__all__ = [
    "bf16_linear",
    "fp8_linear",
    "fp8_moe",
    "moe",
    "mxfp4_linear",
    "mxfp4_moe",
    "nvfp4_linear",
    "nvfp4_moe",
]


def _linear(x: torch.Tensor, w: torch.Tensor, bias, what: str) -> torch.Tensor:
    if x.shape[-1] != w.shape[-1]:
        raise ValueError(f"{what}: x has K={x.shape[-1]} but the weight has K={w.shape[-1]} ({tuple(w.shape)})")
    y = x.to(torch.float32) @ w.to(torch.float32).t()
    if bias is not None:
        y = y + bias.to(torch.float32)
    return y


def bf16_linear(x: torch.Tensor, w: torch.Tensor, bias=None) -> torch.Tensor:
    return _linear(x, w, bias, "bf16_linear").to(x.dtype)


def mxfp4_linear(x, w_packed, w_scale, bias=None, act_qdq: bool = False) -> torch.Tensor:
    """W4A16 (act_qdq=False) or W4A4 (activations MXFP4-QDQ'd along K, "even" rule)."""
    w = dequantize_mxfp4(w_packed, w_scale)
    xf = x.to(torch.float32)
    if act_qdq:
        xf = qdq_mxfp4(xf)
    return _linear(xf, w, bias, "mxfp4_linear").to(x.dtype)


def nvfp4_linear(x, w_packed, w_block_scale, w_scale_2, bias=None, input_scale=None) -> torch.Tensor:
    """W4A16; with input_scale (ModelOpt activation global scale amax/(6*448)) activations are
    NVFP4-QDQ'd first (W4A4). w_scale_2: scalar or per output row [N]."""
    w = dequantize_nvfp4(w_packed, w_block_scale, w_scale_2)
    xf = x.to(torch.float32)
    if input_scale is not None:
        xf = qdq_nvfp4(xf, input_scale)
    return _linear(xf, w, bias, "nvfp4_linear").to(x.dtype)


def fp8_linear(x, w_fp8, w_scale, bias=None, input_scale=None, act_dynamic: bool = False) -> torch.Tensor:
    """w_scale scalar, [N] or [N, 1]. input_scale: static activation QDQ; act_dynamic: dynamic
    per-token activation QDQ (FP8_DYNAMIC); neither: weight-only."""
    if act_dynamic and input_scale is not None:
        raise ValueError("fp8_linear: act_dynamic and a static input_scale are exclusive")
    w = dequantize_fp8(w_fp8, w_scale)
    xf = x.to(torch.float32)
    if input_scale is not None:
        xf = qdq_fp8(xf, input_scale)
    elif act_dynamic:
        xf = qdq_fp8_per_token(xf)
    return _linear(xf, w, bias, "fp8_linear").to(x.dtype)


# --- MoE -----------------------------------------------------------------------------------------


def _check_routing(x, topk_weights, topk_ids, num_experts: int, what: str) -> None:
    if x.dim() != 2:
        raise ValueError(f"{what}: x must be [T, H], got {tuple(x.shape)}")
    if topk_ids.shape != topk_weights.shape or topk_ids.shape[0] != x.shape[0]:
        raise ValueError(
            f"{what}: topk_ids {tuple(topk_ids.shape)} / topk_weights {tuple(topk_weights.shape)} "
            f"must both be [T={x.shape[0]}, k]"
        )
    if topk_ids.numel() and (int(topk_ids.min()) < 0 or int(topk_ids.max()) >= num_experts):
        raise ValueError(f"{what}: topk_ids out of range [0, {num_experts})")


def _moe_reference(
    x: torch.Tensor,
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    num_experts: int,
    expert: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    act_in: Callable[[int, torch.Tensor], torch.Tensor] | None,
    act_mid: Callable[[int, torch.Tensor], torch.Tensor] | None,
    what: str,
) -> torch.Tensor:
    """expert(e) -> (w13 [2I, H], w2 [H, I]) in float32; act_in/act_mid quantize activations."""
    _check_routing(x, topk_weights, topk_ids, num_experts, what)
    xf = x.to(torch.float32)
    out = torch.zeros_like(xf)
    for e in torch.unique(topk_ids).tolist():
        tok, slot = (topk_ids == e).nonzero(as_tuple=True)
        w13, w2 = expert(e)
        if w13.shape[0] % 2 or w13.shape[1] != x.shape[1] or w2.shape != (x.shape[1], w13.shape[0] // 2):
            raise ValueError(f"{what}: expert {e} has w13 {tuple(w13.shape)}, w2 {tuple(w2.shape)} for H={x.shape[1]}")
        h = xf[tok]
        if act_in is not None:
            h = act_in(e, h)
        gate, up = (h @ w13.t()).chunk(2, dim=-1)
        # Engines materialise the intermediate in the model dtype between the two GEMMs (and a
        # W4A4 kernel quantizes that tensor); rounding here keeps activation-QDQ flips matched.
        a = (F.silu(gate) * up).to(x.dtype).to(torch.float32)
        if act_mid is not None:
            a = act_mid(e, a)
        y = a @ w2.t()
        out.index_add_(0, tok, y * topk_weights[tok, slot].to(torch.float32).unsqueeze(-1))
    return out.to(x.dtype)


def moe(x, w13, w2, topk_weights, topk_ids) -> torch.Tensor:
    """Unquantized (bf16/fp16/fp32) expert weights."""
    return _moe_reference(
        x, topk_weights, topk_ids, w13.shape[0],
        lambda e: (w13[e].to(torch.float32), w2[e].to(torch.float32)), None, None, "moe",
    )


def mxfp4_moe(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, act_qdq: bool = False) -> torch.Tensor:
    """w13 [E, 2I, H//2] + e8m0 [E, 2I, H//32]; w2 [E, H, I//2] + [E, H, I//32]. act_qdq: both
    GEMM inputs (x and the SiLU*up intermediate) are MXFP4-QDQ'd, as a W4A4 kernel computes."""
    qdq = (lambda e, a: qdq_mxfp4(a)) if act_qdq else None
    return _moe_reference(
        x, topk_weights, topk_ids, w13.shape[0],
        lambda e: (dequantize_mxfp4(w13[e], w13_scale[e]), dequantize_mxfp4(w2[e], w2_scale[e])),
        qdq, qdq, "mxfp4_moe",
    )


def nvfp4_moe(
    x, w13, w13_scale, w13_scale_2, w2, w2_scale, w2_scale_2, topk_weights, topk_ids,
    w13_input_scale=None, w2_input_scale=None,
) -> torch.Tensor:
    """NVFP4 experts, scale_2 per expert [E]. W4A16 unless input scales (per-expert [E] or one
    scalar) are given, then activations are NVFP4-QDQ'd with them (W4A4)."""

    def per_expert(s, e):
        s = torch.as_tensor(s)
        return s.reshape(()) if s.numel() == 1 else s.reshape(-1)[e]

    def qdq(scale):
        return None if scale is None else (lambda e, a: qdq_nvfp4(a, per_expert(scale, e)))

    return _moe_reference(
        x, topk_weights, topk_ids, w13.shape[0],
        lambda e: (
            dequantize_nvfp4(w13[e], w13_scale[e], per_expert(w13_scale_2, e)),
            dequantize_nvfp4(w2[e], w2_scale[e], per_expert(w2_scale_2, e)),
        ),
        qdq(w13_input_scale), qdq(w2_input_scale), "nvfp4_moe",
    )


def _fp8_scale(s_e: torch.Tensor, rows: int, shards: int, what: str) -> torch.Tensor:
    """One expert's fp8 weight scale as a per-row [rows, 1] (or scalar) scale. Accepted: one value
    (per tensor), one per shard (gate/up of w13: rows split evenly), or one per row ([rows] / [rows, 1],
    per channel as compressed-tensors FP8_DYNAMIC writes it)."""
    s_e = s_e.to(torch.float32).reshape(-1)
    if s_e.numel() == 1:
        return s_e.reshape(())
    if s_e.numel() == rows:
        return s_e.reshape(rows, 1)
    if s_e.numel() == shards:
        return s_e.repeat_interleave(rows // shards).reshape(rows, 1)
    raise ValueError(f"fp8_moe: {what} scale per expert must hold 1, {shards} (per shard) or {rows} (per row) "
                     f"values, got {s_e.numel()}")


def fp8_moe(
    x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, w13_input_scale=None, w2_input_scale=None,
    act_dynamic: bool = False,
) -> torch.Tensor:
    """fp8 experts; w13_scale per expert: [E] (per tensor), [E, 2] (gate/up shards) or [E, 2I] /
    [E, 2I, 1] (per channel); w2_scale [E] or [E, H] / [E, H, 1]. Input scales (scalar or per expert
    [E]) turn on static activation QDQ; act_dynamic on dynamic per-token QDQ (FP8_DYNAMIC)."""
    if act_dynamic and (w13_input_scale is not None or w2_input_scale is not None):
        raise ValueError("fp8_moe: act_dynamic and static input scales are exclusive")

    def qdq(scale):
        if act_dynamic:
            return lambda e, a: qdq_fp8_per_token(a)
        if scale is None:
            return None
        s = torch.as_tensor(scale, dtype=torch.float32)
        return lambda e, a: qdq_fp8(a, s.reshape(()) if s.numel() == 1 else s.reshape(-1)[e])

    def expert(e):
        a = dequantize_fp8(w13[e], _fp8_scale(w13_scale[e], w13.shape[1], 2, "w13"))
        b = dequantize_fp8(w2[e], _fp8_scale(w2_scale[e], w2.shape[1], 1, "w2"))
        return a, b

    return _moe_reference(x, topk_weights, topk_ids, w13.shape[0], expert, qdq(w13_input_scale),
                          qdq(w2_input_scale), "fp8_moe")


# --- registration ---------------------------------------------------------------------------------

for _name, _fn in (
    ("bf16_linear", bf16_linear),
    ("mxfp4_linear", mxfp4_linear),
    ("nvfp4_linear", nvfp4_linear),
    ("fp8_linear", fp8_linear),
    ("moe", moe),
    ("mxfp4_moe", mxfp4_moe),
    ("nvfp4_moe", nvfp4_moe),
    ("fp8_moe", fp8_moe),
):
    define_op(_name, _fn)

# Layout transforms are ops too, so a backend (e.g. a fused GPU shuffle) can claim them.
LAYOUT_OPS = (
    "shuffle_rows_32",
    "shuffle_rows_32_inverse",
    "interleave_gate_up",
    "interleave_gate_up_inverse",
    "interleave_block_scale_128x4",
    "interleave_block_scale_128x4_inverse",
    "trtllm_fp4_w13_layout",
    "trtllm_fp4_w13_layout_inverse",
    "trtllm_fp4_w2_layout",
    "trtllm_fp4_w2_layout_inverse",
    "aiter_shuffle_weight",
    "aiter_shuffle_weight_inverse",
    "aiter_shuffle_scale",
    "aiter_shuffle_scale_inverse",
    "fp4_tiles",
    "fp4_tiles_inverse",
    "fp4_words",
    "fp4_words_inverse",
)
for _name in LAYOUT_OPS:
    define_op(_name, getattr(layouts, _name))


# --- backends consuming a kernel layout ------------------------------------------------------------
from .registry import REFERENCE_PRIORITY, register_backend  # noqa: E402


def nvfp4_moe_trtllm(x, w13, w13_scale, w13_scale_2, w2, w2_scale, w2_scale_2, topk_weights, topk_ids,
                     w13_input_scale=None, w2_input_scale=None) -> torch.Tensor:
    """nvfp4_moe on weights in the TRT-LLM FP4 layout (engine/quant/nvfp4_layout.py): undo the
    layout into temporaries, then the reference. A CPU stand-in for the TRT-LLM kernel."""
    a, a_s = layouts.trtllm_fp4_w13_layout_inverse(w13, w13_scale)
    b, b_s = layouts.trtllm_fp4_w2_layout_inverse(w2, w2_scale)
    return nvfp4_moe(x, a, a_s, w13_scale_2, b, b_s, w2_scale_2, topk_weights, topk_ids, w13_input_scale, w2_input_scale)


# A stand-in, used only when asked for by name (backends={"nvfp4_moe": "torch_trtllm"}); the plain
# reference stays last in the order.
register_backend("nvfp4_moe", "torch_trtllm", nvfp4_moe_trtllm, lambda ctx: True,
                 priority=REFERENCE_PRIORITY - 1, layout="trtllm", on_request=True)


def mxfp4_linear_tiles(x, w_packed, w_scale, bias=None, act_qdq: bool = False) -> torch.Tensor:
    """mxfp4_linear on weights in layouts.fp4_tiles: undo the layout into temporaries, then the reference."""
    w, s = layouts.fp4_tiles_inverse(w_packed, w_scale)
    return mxfp4_linear(x, w, s, bias, act_qdq)


def nvfp4_linear_tiles(x, w_packed, w_block_scale, w_scale_2, bias=None, input_scale=None) -> torch.Tensor:
    w, s = layouts.fp4_tiles_inverse(w_packed, w_block_scale)
    return nvfp4_linear(x, w, s, w_scale_2, bias, input_scale)


for _name, _fn in (("mxfp4_linear", mxfp4_linear_tiles), ("nvfp4_linear", nvfp4_linear_tiles)):
    register_backend(_name, "torch_tiles", _fn, lambda ctx: True, priority=REFERENCE_PRIORITY - 1, layout="fp4_tiles",
                     on_request=True)


def mxfp4_moe_words(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, act_qdq: bool = False) -> torch.Tensor:
    """mxfp4_moe on experts in layouts.fp4_words: undo the word map into temporaries, then the reference."""
    a, a_s = layouts.fp4_words_inverse(w13, w13_scale)
    b, b_s = layouts.fp4_words_inverse(w2, w2_scale)
    return mxfp4_moe(x, a, a_s, b, b_s, topk_weights, topk_ids, act_qdq)


def nvfp4_moe_words(x, w13, w13_scale, w13_scale_2, w2, w2_scale, w2_scale_2, topk_weights, topk_ids,
                    w13_input_scale=None, w2_input_scale=None) -> torch.Tensor:
    a, a_s = layouts.fp4_words_inverse(w13, w13_scale)
    b, b_s = layouts.fp4_words_inverse(w2, w2_scale)
    return nvfp4_moe(x, a, a_s, w13_scale_2, b, b_s, w2_scale_2, topk_weights, topk_ids, w13_input_scale, w2_input_scale)


for _name, _fn in (("mxfp4_moe", mxfp4_moe_words), ("nvfp4_moe", nvfp4_moe_words)):
    register_backend(_name, "torch_words", _fn, lambda ctx: True, priority=REFERENCE_PRIORITY - 1, layout="fp4_words",
                     on_request=True)
