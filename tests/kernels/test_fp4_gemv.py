"""The small-M FP4 kernels (triton, interpreted) against the torch reference, through the launch
paths the conformance cases do not reach on CPU: explicit configurations with split-K (fp32
atomics), 1024-wide steps over a ragged K (masked last step), rows past N, and both scale kinds for
the M = 1 kernel and the tensor-core one. The GPU runs the same launches compiled."""

import pytest
import torch

from qcert.kernels import ops as ref
from qcert.kernels.mxfp4 import quantize_mxfp4
from qcert.kernels.nvfp4 import quantize_nvfp4
from qcert.kernels.tolerances import assert_close_rel

fv = pytest.importorskip("qcert.kernels.triton.fp4_gemv")

CASES = [  # kind, M, N, K, (BLOCK_N, BLOCK_K, split_k, warps, stages)
    ("mxfp4", 1, 20, 2880, (4, 1024, 1, 1, 1)),  # ragged K: 3 steps, the last masked
    ("mxfp4", 1, 5, 2048, (4, 1024, 2, 1, 1)),  # split K, fewer rows than BLOCK_N
    ("nvfp4", 1, 24, 1040, (4, 1024, 1, 1, 1)),
    ("nvfp4", 1, 9, 512, (4, 256, 2, 1, 1)),
    ("mxfp4", 16, 40, 256, (16, 64, 2, 4, 1)),  # tensor-core kernel, split K
    ("nvfp4", 3, 33, 176, (16, 64, 1, 4, 1)),  # ragged K on the tensor-core kernel
]


@pytest.mark.parametrize("kind,m,n,k,cfg", CASES)
def test_fp4_gemv_matches_reference(kind, m, n, k, cfg):
    g = torch.Generator().manual_seed(n * k + m)
    w = torch.randn(n, k, generator=g) * torch.exp(torch.randn(n, 1, generator=g))
    x = torch.randn(m, k, generator=g)
    bias = torch.randn(n, generator=g)
    if kind == "mxfp4":
        wp, ws = quantize_mxfp4(w)
        want = ref.mxfp4_linear(x, wp, ws, bias)
        got = fv.fp4_gemv(x, wp, ws, fv.E8M0, bias=bias, cfg=cfg)
    else:
        wp, ws, s2 = quantize_nvfp4(w)
        want = ref.nvfp4_linear(x, wp, ws, s2, bias)
        got = fv.fp4_gemv(x, wp, ws, fv.E4M3, g=s2.float().reshape(-1).expand(n), bias=bias, cfg=cfg)
    assert_close_rel(got, want, "fp32")
