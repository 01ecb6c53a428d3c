"""MoE with FP4 experts: routing by sorted token/expert indices, then two grouped fp4 GEMMs.

Routing (moe_routing.py) sorts the T*k (token, slot) pairs by expert into M-blocks of one expert
each. GEMM 1 gathers x rows through the sorted token ids against w13[e] (gate and up rows);
SiLU(gate) * up is rounded to the model dtype (as engines materialise it) and, for W4A4, MXFP4- or
NVFP4-QDQ'd; GEMM 2 runs it against w2[e]; each token's k results are weighted by topk_weights and
summed in fp32 (a gather through the routing's slot_row: no atomics, so the sum order is fixed).
Decode-sized MoE with bf16 or fp16 GEMM inputs on an NVIDIA GPU runs both GEMMs on the tensor-core GEMV's
grouped mode (8-row blocks, fp4_gemv_mma) instead of the general kernel (fp4_gemm, 16- or 64-row
blocks). A decode step is then five kernels: routing, GEMM, SiLU * up, GEMM, weighted sum."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..nvfp4 import moe_activation_scale
from ._launch import check_out, kernel, round_into, store_buffer
from . import fp4_gemv_mma
from .act_quant import mxfp4_qdq, nvfp4_qdq
from .fp4_gemm import E4M3, E8M0, fp4_gemm
from .moe_routing import Routing, align_routing


DECODE_ROWS = 64  # T * k up to this is decode-sized: small M-blocks, the tensor-core GEMV where it runs


def _block_m(rows: int, device: torch.device, gemv: bool) -> int:
    return 8 if gemv else (16 if device.type == "cpu" or rows <= DECODE_ROWS else 64)


class Nvfp4Act:
    """NVFP4 W4A4 activation QDQ with one global scale s for all experts. The GEMMs take it unscaled
    (code * block scale: at most 6 significant bits, exact in bf16) with s folded into their per-column
    scale g, so its input is bf16 like MXFP4's QDQ (e2m1 * 2^k) and the tensor-core GEMV can run it."""

    def __init__(self, s: torch.Tensor):
        self.s = s

    def __call__(self, a: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # g is _per_expert's [E, N] view with stride 0 along N: scale its column, keep the view
        return nvfp4_qdq(a, self.s), (g[:, :1] * self.s).expand_as(g)


def _gemm_input(a: torch.Tensor, g, qdq):
    """The grouped GEMM's input and per-column scale after the activation QDQ (None: none)."""
    if qdq is None:
        return a, g
    if isinstance(qdq, Nvfp4Act):
        return qdq(a, g)
    return qdq(a), g


def _decode_gemv(x: torch.Tensor, rows: int) -> bool:
    """Decode-sized MoE on an NVIDIA GPU with bf16 or fp16 activations: both grouped GEMMs on the tensor-core
    GEMV (fp4_gemv_mma), 8-row blocks. W4A4's activation QDQs give bf16 (act_quant.py), which it takes."""
    return rows <= DECODE_ROWS and fp4_gemv_mma.usable(x)


def _grouped_gemm(a, w, scales, scale_kind, r: Routing, g, a_rows, gemv: bool, words: bool) -> torch.Tensor:
    """[rows of the routing, N] fp32: each M-block of a (gathered through a_rows) times its expert."""
    if gemv:
        return fp4_gemv_mma.fp4_gemv_mma(a, fp4_gemv_mma.as_words(w), scales,
                                         scale_kind, g, None, None, torch.float32, a_rows=a_rows,
                                         block_expert=r.block_expert, block_m=r.block_m, mapped=words)
    return fp4_gemm(a, w, scales, scale_kind, m=r.token.numel(), a_rows=a_rows, block_expert=r.block_expert,
                    block_m=r.block_m, g=g, out_dtype=torch.float32, words=words)


def fp4_moe(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, *, scale_kind: int,
            g13=None, g2=None, act_qdq: bool = False, qdq_in=None, qdq_mid=None, out=None,
            words: bool = False) -> torch.Tensor:
    """act_qdq: MXFP4 W4A4; qdq_in / qdq_mid: other activation QDQs of the GEMM 1 / GEMM 2 inputs.
    words: w13 and w2 in layouts.fp4_words."""
    if act_qdq:
        qdq_in = qdq_mid = mxfp4_qdq
    if x.dim() != 2 or topk_ids.shape != topk_weights.shape or topk_ids.shape[0] != x.shape[0]:
        raise ValueError(f"fp4_moe: x {tuple(x.shape)}, topk_ids {tuple(topk_ids.shape)}, "
                         f"topk_weights {tuple(topk_weights.shape)} must be [T, H], [T, k], [T, k]")
    t, h = x.shape
    e_count = w13.shape[0]
    out = check_out(out, (t, h), x.dtype, x.device, "fp4_moe")
    rows = t * topk_ids.shape[1]
    gemv = _decode_gemv(x, rows)
    r = align_routing(topk_ids, e_count, _block_m(rows, x.device, gemv))
    a, g13 = _gemm_input(x, g13, qdq_in)
    gu = _grouped_gemm(a, w13, w13_scale, scale_kind, r, g13, r.token, gemv, words)
    act, g2 = _gemm_input(silu_mul(gu, x.dtype), g2, qdq_mid)
    y = _grouped_gemm(act, w2, w2_scale, scale_kind, r, g2, None, gemv, words)
    return combine(y, topk_weights, r.slot_row, out)


def _silu_mul(gu_ptr, act_ptr, I, stride_g, stride_a, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = cols < I
    gate = tl.load(gu_ptr + row * stride_g + cols, mask=ok, other=0.0)
    up = tl.load(gu_ptr + row * stride_g + I + cols, mask=ok, other=0.0)
    e = tl.exp(-tl.abs(gate))  # sigmoid without overflow: 1 / (1 + e) or e / (1 + e)
    act = gate * (tl.where(gate >= 0, 1.0, e) / (1.0 + e)) * up
    tl.store(act_ptr + row * stride_a + cols, act.to(act_ptr.dtype.element_ty), mask=ok)


def _combine(y_ptr, w_ptr, slot_row_ptr, out_ptr, H, stride_y, stride_o, K: tl.constexpr, BLOCK: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = cols < H
    acc = tl.full((BLOCK,), 0.0, tl.float32)
    for j in tl.static_range(K):  # the token's k pairs, in slot order (deterministic, no atomics)
        row = tl.load(slot_row_ptr + t * K + j)
        v = tl.load(y_ptr + tl.maximum(row, 0).to(tl.int64) * stride_y + cols, mask=ok & (cols * 0 + row >= 0), other=0.0)
        acc += tl.load(w_ptr + t * K + j).to(tl.float32) * v
    tl.store(out_ptr + t * stride_o + cols, acc.to(out_ptr.dtype.element_ty), mask=ok)


silu_mul_kernel = kernel(_silu_mul)
combine_kernel = kernel(_combine)
_EW_BLOCK = 1024  # columns per program of the two elementwise kernels


def silu_mul(gu: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[rows, 2I] gate|up (fp32) -> SiLU(gate) * up rounded to the model dtype, as engines materialise it."""
    rows, i = gu.shape[0], gu.shape[1] // 2
    act = torch.empty((rows, i), dtype=dtype, device=gu.device)
    buf = store_buffer(act)  # rounded as on the GPU, so a W4A4 QDQ of act sees the GPU's values
    if rows:
        silu_mul_kernel.on(gu.device)[(rows, triton.cdiv(i, _EW_BLOCK))](gu, buf, i, gu.stride(0), buf.stride(0),
                                                                          BLOCK=_EW_BLOCK)
    return round_into(act, buf)


def combine(y: torch.Tensor, topk_weights: torch.Tensor, slot_row: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out[t] = sum_j topk_weights[t, j] * y[slot_row[t * k + j]] in fp32 (a row of -1 adds nothing)."""
    t, k = topk_weights.shape
    h = out.shape[1]
    buf = store_buffer(out)
    if t:
        combine_kernel.on(y.device)[(t, triton.cdiv(h, _EW_BLOCK))](y, topk_weights.contiguous(), slot_row, buf, h,
                                                                    y.stride(0), buf.stride(0), K=k, BLOCK=_EW_BLOCK)
    return round_into(out, buf)


def mxfp4_moe(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, act_qdq=False, out=None, words=False):
    return fp4_moe(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, scale_kind=E8M0,
                   act_qdq=act_qdq, out=out, words=words)


def _per_expert(s, e_count: int, n: int, device) -> torch.Tensor:
    s = torch.as_tensor(s, dtype=torch.float32, device=device).reshape(-1)
    if s.numel() not in (1, e_count):
        raise ValueError(f"nvfp4_moe: scale_2 has {s.numel()} values for {e_count} experts")
    return s.expand(e_count).reshape(e_count, 1).expand(e_count, n)


def nvfp4_moe(x, w13, w13_scale, w13_scale_2, w2, w2_scale, w2_scale_2, topk_weights, topk_ids,
              w13_input_scale=None, w2_input_scale=None, out=None, words=False):
    e_count = w13.shape[0]
    return fp4_moe(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, scale_kind=E4M3,
                   g13=_per_expert(w13_scale_2, e_count, w13.shape[1], x.device),
                   g2=_per_expert(w2_scale_2, e_count, w2.shape[1], x.device),
                   qdq_in=_nvfp4_act(w13_input_scale, x.device), qdq_mid=_nvfp4_act(w2_input_scale, x.device), out=out,
                   words=words)


def _nvfp4_act(scale, device):
    """W4A4 activation QDQ with ONE global scale for all experts (kernels/nvfp4.moe_activation_scale)."""
    s = moe_activation_scale(scale, device, "triton")
    return None if s is None else Nvfp4Act(s)
