"""fp4_gemm (the general kernel, interpreted here) reads every e4m3 block-scale byte as torch does:
subnormal scales exactly, 0x7F / 0xFF as NaN. The interpreter's own float8 conversion flushes the
first and reads the second as a number, so CPU runs decode by bit arithmetic (a GPU converts in
hardware)."""

import pytest
import torch

from qcert.kernels.nvfp4 import dequantize_nvfp4, quantize_nvfp4
from qcert.kernels.tolerances import assert_close_rel

fg = pytest.importorskip("qcert.kernels.triton.fp4_gemm")


def test_every_e4m3_scale_byte(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    g = torch.Generator().manual_seed(3)
    n, k, m = 32, 128, 20  # 8 scales a row: the 256 byte values once each; M > 16 takes the general kernel
    wp, _, s2 = quantize_nvfp4(torch.randn(n, k, generator=g))
    scales = torch.arange(256, dtype=torch.uint8).reshape(n, k // 16)
    x = torch.randn(m, k, generator=g)
    want = x @ dequantize_nvfp4(wp, scales.view(torch.float8_e4m3fn), s2).T
    nan_cols = torch.isnan(want).any(0)
    assert nan_cols.tolist() == [j in (15, 31) for j in range(n)]  # rows holding 0x7F and 0xFF (premise)
    got = fg.fp4_gemm(x, wp, scales, fg.E4M3, g=s2.float().reshape(1, 1).expand(1, n), out_dtype=torch.float32)
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert_close_rel(got[:, ~nan_cols], want[:, ~nan_cols], "fp32")
