"""A GEMM launcher that sizes its grid with floor division (N // BLOCK_N instead of cdiv): the
last, partial column tile is never launched, so those outputs keep whatever the buffer held.
A kernel test that compares against a freshly allocated tensor can pass by luck (zeros, or stale
correct values); the poisoned `out=` buffer in the kernel cases cannot."""

from qcert.conformance.mutants import Mutant
from qcert.kernels.triton import fp4_gemm as _fg

_real = _fg.fp4_gemm
_TILE_N = 32


def fp4_gemm_floor_grid(a, w, scales, scale_kind, *, out=None, **kw):
    """Real result for the full N tiles only; the tail columns are left unwritten."""
    y = _real(a, w, scales, scale_kind, **kw)
    n_full = y.shape[-1] // _TILE_N * _TILE_N
    if out is None:
        out = torch_empty_like(y)
    out[..., :n_full].copy_(y[..., :n_full])
    return out


def torch_empty_like(y):
    import torch

    return torch.empty_like(y)


MUTANT = Mutant(
    id="kernels/gemm-grid-skips-tail",
    description="the fp4 GEMM launch grid uses N // BLOCK_N, leaving the last partial column tile unwritten",
    upstream="class of bug: floor-division launch grids in custom GEMM kernels",
    kills=["kernels/mxfp4-linear-matches-reference", "kernels/nvfp4-linear-matches-reference",
           "kernels/mxfp4-nan-scale-propagates", "kernels/gpu-linear-matches-reference"],
    patches=[("qcert.kernels.triton.ops", "fp4_gemm", fp4_gemm_floor_grid)],
)
