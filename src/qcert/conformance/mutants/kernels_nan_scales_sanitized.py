"""Block scales sanitized before the kernel: a NaN scale byte (e8m0 0xFF, e4m3 S.1111.111) becomes 1.0,
as a `nan_to_num` on the loaded scales or a conversion that maps NaN to a number would do, so a corrupt
block yields finite outputs and nothing downstream notices. (Saturating to the largest finite scale
would not do for MXFP4: 2^127 overflows the sums to inf - inf = NaN anyway.)"""

import torch

from qcert.conformance.mutants import Mutant
from qcert.kernels.triton import fp4_gemm as _fg
from qcert.kernels.triton import moe as _moe
from qcert.kernels.triton import ops as _ops

_gemm, _fp4_moe = _ops.fp4_gemm, _moe.fp4_moe


def _sanitized(scales: torch.Tensor, scale_kind: int) -> torch.Tensor:
    b = scales.view(torch.uint8)
    nan, one = (b == 0xFF, 0x7F) if scale_kind == _fg.E8M0 else ((b & 0x7F) == 0x7F, 0x38)
    return torch.where(nan, one, b).to(torch.uint8).view(scales.dtype)


def gemm(a, w, scales, scale_kind, **kw):
    return _gemm(a, w, _sanitized(scales, scale_kind), scale_kind, **kw)


def fp4_moe(x, w13, w13_scale, w2, w2_scale, topk_weights, topk_ids, *, scale_kind, **kw):
    return _fp4_moe(x, w13, _sanitized(w13_scale, scale_kind), w2, _sanitized(w2_scale, scale_kind), topk_weights,
                    topk_ids, scale_kind=scale_kind, **kw)


MUTANT = Mutant(
    id="kernels/nan-scales-sanitized",
    description="NaN block-scale bytes are read as 1.0 before the kernel runs (nan_to_num on the scales)",
    upstream="class of bug: scale clean-ups that hide corrupt checkpoints",
    kills=["kernels/mxfp4-nan-scale-propagates", "kernels/nvfp4-nan-scale-propagates",
           "kernels/moe-nan-scale-propagates", "kernels/gpu-mxfp4-nan-scale-propagates",
           "kernels/gpu-nvfp4-nan-scale-propagates", "kernels/gpu-moe-nan-scale-propagates"],
    patches=[("qcert.kernels.triton.ops", "fp4_gemm", gemm), ("qcert.kernels.triton.moe", "fp4_moe", fp4_moe)],
)
