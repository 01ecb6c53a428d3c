"""MoE routing: the T*k (token, slot) pairs sorted by expert into M-blocks of one expert each.

Each expert's run is padded to a multiple of block_m, so every M-block of the grouped GEMM belongs
to one expert (`block_expert`); padding rows are -1. Nothing here reads a device value on the host
(a CUDA graph can hold it): the padded length is a bound, T * k plus block_m - 1 for each expert
that can have rows, and the blocks past the used ones get expert -1 (the GEMMs skip their weights).

Two ways to compute the same Routing, chosen by size: decode-sized routing (T * k <= SMALL_PAIRS)
is one single-program triton kernel (pairwise comparisons, no sort), since in a decode step the
~20 small torch kernels of the general path cost more than the expert GEMMs; larger routing uses
torch's sort and scans. tests/kernels/test_moe_routing.py holds both to the same properties and
to each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import _helpers as h
from ._launch import kernel

SMALL_PAIRS = 64  # T * k up to this: the one-program kernel (its [pairs, pairs] comparisons stay small)
SMALL_EXPERTS = 1024  # and at most this many experts (its [pairs, experts] one-hot)


@dataclass
class Routing:
    sorted_slot: torch.Tensor  # [P] int64: flat index t*k+j of each padded row, -1 for padding
    token: torch.Tensor  # [P] int32: token of each row, -1 for padding
    slot_row: torch.Tensor  # [T*k] int32: the row of each pair (sorted_slot's inverse); -1: none
    block_expert: torch.Tensor  # [P // block_m] int32
    block_m: int


def padded_rows(pairs: int, num_experts: int, block_m: int) -> int:
    """The bound on the padded length: every pair once, block_m - 1 padding rows per expert that can
    have pairs, rounded up to whole blocks."""
    return (pairs + min(num_experts, pairs) * (block_m - 1) + block_m - 1) // block_m * block_m


def align_routing(topk_ids: torch.Tensor, num_experts: int, block_m: int) -> Routing:
    """Sort topk_ids' (token, slot) pairs by expert, each expert's run padded to block_m. Out-of-range
    ids are an error, checked outside graph capture (the check reads the ids on the host)."""
    k = topk_ids.shape[1]
    flat = topk_ids.reshape(-1)
    n = flat.numel()
    capturing = flat.is_cuda and torch.cuda.is_current_stream_capturing()
    if n and not capturing and (int(flat.min()) < 0 or int(flat.max()) >= num_experts):
        raise ValueError(f"moe: topk_ids out of range [0, {num_experts})")
    p = padded_rows(n, num_experts, block_m)
    if 0 < n <= SMALL_PAIRS and num_experts <= SMALL_EXPERTS:
        return _align_small(flat, k, num_experts, block_m, p)
    return _align_sorted(flat.to(torch.int64), k, num_experts, block_m, p)


def _align_sorted(flat: torch.Tensor, k: int, num_experts: int, block_m: int, p: int) -> Routing:
    n = flat.numel()
    order = torch.argsort(flat, stable=True)
    counts = torch.zeros(num_experts, dtype=torch.int64, device=flat.device).scatter_add_(0, flat, torch.ones_like(flat))
    padded = (counts + block_m - 1) // block_m * block_m
    start = torch.cumsum(counts, 0) - counts
    end_padded = torch.cumsum(padded, 0)
    sorted_e = flat[order]
    pos = end_padded[sorted_e] - padded[sorted_e] + torch.arange(n, device=flat.device) - start[sorted_e]
    sorted_slot = torch.full((p,), -1, dtype=torch.int64, device=flat.device)
    sorted_slot[pos] = order
    slot_row = torch.empty(n, dtype=torch.int32, device=flat.device)
    slot_row[order] = pos.to(torch.int32)
    token = torch.where(sorted_slot >= 0, sorted_slot // k, -1).to(torch.int32)
    block_start = torch.arange(0, p, block_m, device=flat.device)
    expert = torch.searchsorted(end_padded, block_start, right=True)  # the expert whose run holds the block
    block_expert = torch.where(expert < num_experts, expert, -1).to(torch.int32)
    return Routing(sorted_slot, token, slot_row, block_expert, block_m)


def _align_one_program(ids_ptr, slot_ptr, token_ptr, slot_row_ptr, block_e_ptr, n, k, E, P,
                       BN: tl.constexpr, BE: tl.constexpr, BP: tl.constexpr, BB: tl.constexpr, BM: tl.constexpr,
                       SUM: tl.constexpr, CUMSUM: tl.constexpr):
    # Every 2-D tensor below is [rows, BN or BE] and summed over its last axis.
    i = tl.arange(0, BN)
    e_i = tl.load(ids_ptr + i, mask=i < n, other=-1).to(tl.int32)  # -1: no pair
    ev = tl.arange(0, BE)
    counts = SUM(tl.where(ev[:, None] == e_i[None, :], 1, 0))  # [BE] pairs per expert
    padded = (counts + BM - 1) // BM * BM
    end = CUMSUM(padded)  # end of each expert's padded run
    start = end - padded
    # a pair's row: its expert's run start plus the number of earlier pairs with that expert
    earlier = (e_i[:, None] == e_i[None, :]) & (i[None, :] < i[:, None])
    row = SUM(tl.where(ev[None, :] == e_i[:, None], start[None, :], 0)) + SUM(tl.where(earlier, 1, 0))
    tl.store(slot_row_ptr + i, row, mask=i < n)
    # rows hold -1 (padding) unless a pair lands there: fill, then scatter the pairs (the barrier
    # orders the program's own stores)
    r = tl.arange(0, BP)
    tl.store(slot_ptr + r, tl.full((BP,), -1, tl.int64), mask=r < P)
    tl.store(token_ptr + r, tl.full((BP,), -1, tl.int32), mask=r < P)
    tl.debug_barrier()
    tl.store(slot_ptr + row, i.to(tl.int64), mask=i < n)
    tl.store(token_ptr + row, i // k, mask=i < n)
    # each block's expert: the number of experts whose run ends at or before the block's first row
    b = tl.arange(0, BB)
    expert = SUM(tl.where((end[None, :] <= b[:, None] * BM) & (ev[None, :] < E), 1, 0))
    tl.store(block_e_ptr + b, tl.where(expert < E, expert, -1), mask=b * BM < P)


align_kernel = kernel(_align_one_program, SUM=(h.lastsum, h.lastsum_interpreted), CUMSUM=(h.cumsum, h.cumsum_interpreted))


def _align_small(flat: torch.Tensor, k: int, num_experts: int, block_m: int, p: int) -> Routing:
    n, dev = flat.numel(), flat.device
    sorted_slot = torch.empty(p, dtype=torch.int64, device=dev)
    token = torch.empty(p, dtype=torch.int32, device=dev)
    slot_row = torch.empty(n, dtype=torch.int32, device=dev)
    block_expert = torch.empty(p // block_m, dtype=torch.int32, device=dev)
    pow2 = triton.next_power_of_2
    align_kernel.on(dev)[(1,)](flat, sorted_slot, token, slot_row, block_expert, n, k, num_experts, p,
                               BN=pow2(max(n, 16)), BE=pow2(max(num_experts, 16)), BP=pow2(p),
                               BB=pow2(max(p // block_m, 16)), BM=block_m, num_warps=8)
    return Routing(sorted_slot, token, slot_row, block_expert, block_m)
