"""The triton activation QDQs (interpreted here) against the torch references, bit for bit.

Both give bf16 so decode can take the tensor-core GEMV: MXFP4's values (e2m1 * 2^k) are exact in
bf16; NVFP4's are code * block scale, the global scale s2 left to the GEMM, and times s2 in fp32
they must be the reference QDQ exactly."""

import pytest
import torch

from qcert.kernels.mxfp4 import qdq_mxfp4
from qcert.kernels.nvfp4 import qdq_nvfp4

aq = pytest.importorskip("qcert.kernels.triton.act_quant")


def _x(seed: int, rows: int = 5, k: int = 96) -> torch.Tensor:
    x = torch.randn(rows, k, generator=torch.Generator().manual_seed(seed)) * 3
    x[0, :32] *= 2.0 ** -120  # a block near the bottom of the exponent range
    x[1, 7] = float("nan")
    return x


@pytest.mark.parametrize("seed", [0, 1])
def test_mxfp4_qdq_is_the_reference_in_bf16(seed):
    x = _x(seed)
    x[2, 40] = 1e30  # a block near the top
    y = aq.mxfp4_qdq(x)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y.float().nan_to_num(nan=7.0), qdq_mxfp4(x).nan_to_num(nan=7.0))


@pytest.mark.parametrize("seed", [0, 1])
def test_nvfp4_qdq_times_s2_is_the_reference(seed):
    x = _x(seed)
    x[0, :32] = x[3, :32]  # NVFP4's block scales have e4m3's range: no tiny block here
    s2 = (x.nan_to_num().abs().max() / (448 * 6) * 0.7).reshape(1)  # some blocks saturate
    y = aq.nvfp4_qdq(x, s2)
    assert y.dtype == torch.bfloat16
    assert torch.equal((y.float() * s2).nan_to_num(nan=7.0), qdq_nvfp4(x, s2).nan_to_num(nan=7.0))
