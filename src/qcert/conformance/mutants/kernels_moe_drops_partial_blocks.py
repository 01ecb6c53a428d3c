"""MoE routing that sizes each expert's rows with floor division: the rows of an expert's last,
partial block are never computed, so tokens routed there lose that expert's contribution."""

import torch

from qcert.conformance.mutants import Mutant
from qcert.kernels.triton import moe_routing

_align = moe_routing.align_routing


def floor_blocks(topk_ids, num_experts, block_m):
    r = _align(topk_ids, num_experts, block_m)
    counts = torch.bincount(topk_ids.reshape(-1).long(), minlength=num_experts)
    padded = (counts + block_m - 1) // block_m * block_m
    start = torch.cumsum(padded, 0) - padded
    row = torch.arange(r.sorted_slot.numel(), device=r.sorted_slot.device)
    expert = r.block_expert.long().repeat_interleave(block_m)  # -1: blocks past the used ones
    e = expert.clamp(min=0)
    dropped = (expert >= 0) & ((row - start[e]) >= (counts // block_m * block_m)[e])
    slot_row = r.slot_row.clone()
    slot_row[r.sorted_slot[dropped]] = -1  # their pairs add nothing to their tokens
    return moe_routing.Routing(r.sorted_slot.masked_fill(dropped, -1), r.token.masked_fill(dropped, -1), slot_row,
                               r.block_expert, r.block_m)


MUTANT = Mutant(
    id="kernels/moe-drops-partial-blocks",
    description="MoE routing drops the rows of each expert's last partial block",
    upstream="class of bug: floor-division block counts in MoE align kernels",
    kills=["kernels/mxfp4-moe-matches-reference", "kernels/nvfp4-moe-matches-reference",
           "kernels/gpu-moe-matches-reference"],
    patches=[("qcert.kernels.triton.moe", "align_routing", floor_blocks)],
)
