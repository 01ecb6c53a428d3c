"""fp4_gemm with K split over programs (the general kernel; interpreted on CPU, compiled on a GPU):
each split stores its partials and the tile's last program adds them in split order and writes C.
Linear and grouped (MoE: gathered rows, padding, an unused block), even and ragged splits: the
reference's values, every element written, and the same bits on every run."""

import pytest
import torch

from qcert.kernels.mxfp4 import dequantize_mxfp4, quantize_mxfp4
from qcert.kernels.tolerances import assert_close_rel

fg = pytest.importorskip("qcert.kernels.triton.fp4_gemm")

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="compiled launches need a GPU"))]


def _experts(e, n, k, seed):
    g = torch.Generator().manual_seed(seed)
    wp, ws = zip(*(quantize_mxfp4(torch.randn(n, k, generator=g)) for _ in range(e)))
    return torch.stack(wp), torch.stack(ws), torch.randn(n, generator=g)


def _twice(device, *args, **kw):
    """fp4_gemm twice, the second time into a NaN-filled output: (first, second)."""
    first = fg.fp4_gemm(*args, **kw)
    return first, fg.fp4_gemm(*args, **kw, out=torch.full_like(first, torch.nan))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("m,n,k,split", [(5, 48, 512, 2), (18, 40, 576, 3)])  # 576 = 9 steps of 64: ragged
def test_linear_split_k(monkeypatch, device, m, n, k, split):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    wp, ws, bias = (t.to(device) for t in _experts(1, n, k, seed=m * k))
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(k)).to(device)
    want = x @ dequantize_mxfp4(wp[0], ws[0]).T + bias
    cfg = (16, 32, 64, split, 4, 1)
    got, again = _twice(device, x, wp[0], ws[0], fg.E8M0, bias=bias, out_dtype=torch.float32, config=cfg)
    assert_close_rel(got, want, "fp32")
    assert torch.equal(again, got)


@pytest.mark.parametrize("device", DEVICES)
def test_grouped_split_k(monkeypatch, device):
    """Three M-blocks of 4 rows: expert 1, expert 0 with a padding row, and an unused block (-1,
    zeros): every block's programs still count themselves in."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    e, n, k, t = 2, 40, 320, 6
    wp, ws, _ = (x.to(device) for x in _experts(e, n, k, seed=7))
    x = torch.randn(t, k, generator=torch.Generator().manual_seed(8)).to(device)
    a_rows = torch.tensor([0, 3, 5, 1, 2, 4, 0, -1, -1, -1, -1, -1], dtype=torch.int32, device=device)
    block_expert = torch.tensor([1, 0, -1], dtype=torch.int32, device=device)
    cfg = (4, 32, 64, 2, 4, 1)  # 5 steps over 2 splits: the last split 2 steps
    got, again = _twice(device, x, wp, ws, fg.E8M0, m=12, a_rows=a_rows, block_expert=block_expert, block_m=4,
                        out_dtype=torch.float32, config=cfg)
    w = [dequantize_mxfp4(wp[i], ws[i]) for i in range(e)]
    want = torch.zeros(12, n, device=device)
    for i, (row, blk) in enumerate(zip(a_rows.tolist(), [1] * 4 + [0] * 4 + [-1] * 4)):
        if row >= 0 and blk >= 0:
            want[i] = x[row] @ w[blk].T
    assert_close_rel(got, want, "fp32")
    assert torch.equal(again, got)


def test_partials_past_int32_offsets_are_refused():
    """The kernels index a split's partials with int32 offsets: an output too large for them is a
    clear error before anything is allocated or launched."""
    from qcert.kernels.triton._launch import split_buffers

    dummy = torch.empty(1)
    with pytest.raises(ValueError, match="int32 offsets"):
        split_buffers(4, (1 << 15, 1 << 14), 1, "cpu", dummy)
    part, counts = split_buffers(2, (3, 5), 1, "cpu", dummy)
    assert part.shape == (2, 3, 5) and counts.dtype == torch.int32 and int(counts.abs().sum()) == 0
    assert split_buffers(1, (1 << 15, 1 << 16), 1, "cpu", dummy) == (dummy, dummy)
