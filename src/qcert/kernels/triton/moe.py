"""MoE with FP4 experts: routing by sorted token/expert indices, then two grouped fp4 GEMMs.

Routing (host side, torch): the T*k (token, slot) pairs are sorted by expert and each expert's
run is padded to a multiple of BLOCK_M, so every M-block of the grouped GEMM belongs to one expert
(`block_expert`); padding entries are -1 and compute nothing. GEMM 1 gathers x rows through the
sorted token ids against w13[e] (gate and up rows); SiLU(gate) * up is rounded to the model dtype
(as engines materialise it) and, for W4A4, MXFP4- or NVFP4-QDQ'd; GEMM 2 runs it against w2[e]; the
results are weighted by topk_weights and summed per token in fp32. Decode-sized MoE with bf16
GEMM inputs on an NVIDIA GPU runs both GEMMs on the tensor-core GEMV's grouped mode (8-row blocks,
fp4_gemv_mma) instead of the general kernel (fp4_gemm, 16- or 64-row blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..nvfp4 import moe_activation_scale
from ._launch import check_out
from . import fp4_gemv_mma
from .act_quant import mxfp4_qdq, nvfp4_qdq
from .fp4_gemm import E4M3, E8M0, fp4_gemm


@dataclass
class Routing:
    sorted_slot: torch.Tensor  # [P] int64: flat index t*k+j of each padded row, -1 for padding
    token: torch.Tensor  # [P] int32: token of each row, -1 for padding
    block_expert: torch.Tensor  # [P // block_m] int32
    block_m: int


def align_routing(topk_ids: torch.Tensor, num_experts: int, block_m: int) -> Routing:
    """Sort the (token, slot) pairs by expert and pad each expert's run to a multiple of block_m,
    without a host sync (so a CUDA graph can hold it): the padded length is its bound, T * k plus
    block_m - 1 per expert that can have rows, and the blocks past the used ones get expert -1
    (the GEMM skips their weights). Out-of-range ids are an error, checked outside graph capture."""
    t, k = topk_ids.shape
    flat = topk_ids.reshape(-1).to(torch.int64)
    n = flat.numel()
    capturing = flat.is_cuda and torch.cuda.is_current_stream_capturing()
    if n and not capturing and (int(flat.min()) < 0 or int(flat.max()) >= num_experts):
        raise ValueError(f"moe: topk_ids out of range [0, {num_experts})")
    order = torch.argsort(flat, stable=True)
    counts = torch.zeros(num_experts, dtype=torch.int64, device=flat.device).scatter_add_(0, flat, torch.ones_like(flat))
    padded = (counts + block_m - 1) // block_m * block_m
    start = torch.cumsum(counts, 0) - counts
    end_padded = torch.cumsum(padded, 0)
    sorted_e = flat[order]
    pos = end_padded[sorted_e] - padded[sorted_e] + torch.arange(n, device=flat.device) - start[sorted_e]
    p = (n + min(num_experts, n) * (block_m - 1) + block_m - 1) // block_m * block_m
    sorted_slot = torch.full((p,), -1, dtype=torch.int64, device=flat.device)
    sorted_slot[pos] = order
    token = torch.where(sorted_slot >= 0, sorted_slot // k, -1).to(torch.int32)
    block_start = torch.arange(0, p, block_m, device=flat.device)
    expert = torch.searchsorted(end_padded, block_start, right=True)  # the expert whose run holds the block
    block_expert = torch.where(expert < num_experts, expert, -1).to(torch.int32)
    return Routing(sorted_slot, token, block_expert, block_m)


DECODE_ROWS = 64  # T * k up to this is decode-sized: small M-blocks, the tensor-core GEMV where it runs


def _block_m(rows: int, device: torch.device, gemv: bool) -> int:
    return 8 if gemv else (16 if device.type == "cpu" or rows <= DECODE_ROWS else 64)


def _decode_gemv(x: torch.Tensor, rows: int, qdq_in, qdq_mid) -> bool:
    """Decode-sized MoE whose GEMM inputs are bf16 on an NVIDIA GPU: both grouped GEMMs on the
    tensor-core GEMV (fp4_gemv_mma), 8-row blocks. MXFP4 QDQ outputs (e2m1 * 2^k) are exact in bf16;
    NVFP4 QDQ outputs (times an fp32 global scale) are not, so they keep the general kernel."""
    return rows <= DECODE_ROWS and fp4_gemv_mma.usable(x) and qdq_in in (None, mxfp4_qdq) and qdq_mid in (None, mxfp4_qdq)


def _grouped_gemm(a, w, scales, scale_kind, r: Routing, g, a_rows, gemv: bool) -> torch.Tensor:
    """[rows of the routing, N] fp32: each M-block of a (gathered through a_rows) times its expert."""
    if gemv:
        return fp4_gemv_mma.fp4_gemv_mma(a.to(torch.bfloat16), fp4_gemv_mma.as_words(w), scales.view(torch.uint8),
                                         scale_kind, g, None, None, torch.float32, a_rows=a_rows,
                                         block_expert=r.block_expert, block_m=r.block_m)
    return fp4_gemm(a, w, scales, scale_kind, m=r.token.numel(), a_rows=a_rows, block_expert=r.block_expert,
                    block_m=r.block_m, g=g, out_dtype=torch.float32)


def fp4_moe(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, *, scale_kind: int,
            g13=None, g2=None, act_qdq: bool = False, qdq_in=None, qdq_mid=None, out=None) -> torch.Tensor:
    """act_qdq: MXFP4 W4A4; qdq_in / qdq_mid: other activation QDQs of the GEMM 1 / GEMM 2 inputs."""
    if act_qdq:
        qdq_in = qdq_mid = mxfp4_qdq
    if x.dim() != 2 or topk_ids.shape != topk_weights.shape or topk_ids.shape[0] != x.shape[0]:
        raise ValueError(f"fp4_moe: x {tuple(x.shape)}, topk_ids {tuple(topk_ids.shape)}, "
                         f"topk_weights {tuple(topk_weights.shape)} must be [T, H], [T, k], [T, k]")
    t, h = x.shape
    e_count, two_i, _ = w13.shape
    out = check_out(out, (t, h), x.dtype, x.device, "fp4_moe")
    rows = t * topk_ids.shape[1]
    gemv = _decode_gemv(x, rows, qdq_in, qdq_mid)
    r = align_routing(topk_ids, e_count, _block_m(rows, x.device, gemv))
    a = qdq_in(x) if qdq_in is not None else x
    gu = _grouped_gemm(a, w13, w13_scale, scale_kind, r, g13, r.token, gemv)
    gate, up = gu[:, : two_i // 2], gu[:, two_i // 2:]
    act = (F.silu(gate) * up).to(x.dtype)
    if qdq_mid is not None:
        act = qdq_mid(act)
    y = _grouped_gemm(act, w2, w2_scale, scale_kind, r, g2, None, gemv)
    # weighted sum per token; padding rows go to a spare row t (no boolean indexing: no host sync)
    valid = r.sorted_slot >= 0
    weight = torch.where(valid, topk_weights.reshape(-1)[r.sorted_slot.clamp(min=0)].to(torch.float32), 0.0)
    acc = torch.zeros((t + 1, h), dtype=torch.float32, device=x.device)
    acc.index_add_(0, torch.where(valid, r.token.long(), t), y * weight.unsqueeze(-1))
    out.copy_(acc[:t])
    return out


def mxfp4_moe(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, act_qdq=False, out=None):
    return fp4_moe(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, scale_kind=E8M0,
                   act_qdq=act_qdq, out=out)


def _per_expert(s, e_count: int, n: int, device) -> torch.Tensor:
    s = torch.as_tensor(s, dtype=torch.float32, device=device).reshape(-1)
    if s.numel() not in (1, e_count):
        raise ValueError(f"nvfp4_moe: scale_2 has {s.numel()} values for {e_count} experts")
    return s.expand(e_count).reshape(e_count, 1).expand(e_count, n)


def nvfp4_moe(x, w13, w13_scale, w13_scale_2, w2, w2_scale, w2_scale_2, topk_weights, topk_ids,
              w13_input_scale=None, w2_input_scale=None, out=None):
    e_count = w13.shape[0]
    return fp4_moe(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, scale_kind=E4M3,
                   g13=_per_expert(w13_scale_2, e_count, w13.shape[1], x.device),
                   g2=_per_expert(w2_scale_2, e_count, w2.shape[1], x.device),
                   qdq_in=_nvfp4_act(w13_input_scale, x.device), qdq_mid=_nvfp4_act(w2_input_scale, x.device), out=out)


def _nvfp4_act(scale, device):
    """W4A4 activation QDQ with ONE global scale for all experts (kernels/nvfp4.moe_activation_scale)."""
    s = moe_activation_scale(scale, device, "triton")
    return None if s is None else (lambda a: nvfp4_qdq(a, s))
