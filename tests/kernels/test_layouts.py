"""Layout transforms: exact round trips and agreement with independent index formulas."""

import itertools

import pytest
import torch

from qcert.kernels import layouts as L


def _rand(shape, seed, dtype=torch.uint8):
    t = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return t.view(dtype)


def _moved(src: torch.Tensor, dst_of) -> torch.Tensor:
    """Build the expected output by placing each element at dst_of(index) -> flat position."""
    raw = src.view(torch.int16 if src.element_size() == 2 else torch.uint8)  # move raw elements
    flat = raw.reshape(-1)
    out = torch.empty_like(flat)
    for lin, idx in enumerate(itertools.product(*[range(n) for n in src.shape])):
        out[dst_of(idx)] = flat[lin]
    return out.reshape(src.shape).view(src.dtype)


ROUND_TRIPS = [
    (L.shuffle_rows_32, L.shuffle_rows_32_inverse, (2, 64, 5)),
    (L.interleave_gate_up, L.interleave_gate_up_inverse, (3, 10, 4)),
    (L.interleave_block_scale_128x4, L.interleave_block_scale_128x4_inverse, (2, 256, 8)),
    (L.aiter_shuffle_weight, L.aiter_shuffle_weight_inverse, (2, 32, 64)),
    (L.aiter_shuffle_scale, L.aiter_shuffle_scale_inverse, (2, 64, 16)),
]


@pytest.mark.parametrize("fwd,inv,shape", ROUND_TRIPS, ids=[f[0].__name__ for f in ROUND_TRIPS])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float8_e4m3fn])
def test_round_trip_exact_shape_dtype_kept(fwd, inv, shape, dtype):
    x = _rand(shape, 0, dtype)
    y = fwd(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not torch.equal(y.view(torch.uint8), x.view(torch.uint8))  # it does permute
    assert torch.equal(inv(y).view(torch.uint8), x.view(torch.uint8))


def test_shuffle_rows_32_formula():
    x = _rand((2, 64, 3), 1)
    m, c = 64, 3
    # new row r (within a 32-block) holds old row (r % 8) * 4 + r // 8, so old row q -> new r
    # with r % 8 = q // 4 and r // 8 = q % 4, i.e. r = (q % 4) * 8 + q // 4.
    def dst(i):
        e, row, col = i
        blk, q = divmod(row, 32)
        return (e * m + blk * 32 + (q % 4) * 8 + q // 4) * c + col
    assert torch.equal(L.shuffle_rows_32(x), _moved(x, dst))


def test_interleave_gate_up_formula():
    x = _rand((2, 12, 3), 2)
    half = 6
    def dst(i):
        e, row, col = i
        new = 2 * row if row < half else 2 * (row - half) + 1
        return (e * 12 + new) * 3 + col
    assert torch.equal(L.interleave_gate_up(x), _moved(x, dst))


def test_block_scale_128x4_formula():
    x = _rand((2, 256, 8), 3)
    m, k = 256, 8
    def dst(i):
        e, row, col = i
        a, r = divmod(row, 128)
        b, c = divmod(r, 32)  # row = a*128 + b*32 + c
        d, f = divmod(col, 4)
        # stored order (a, d, c, b, f) with sizes (M/128, K/4, 32, 4, 4)
        return e * m * k + a * 128 * k + d * 512 + c * 16 + b * 4 + f
    assert torch.equal(L.interleave_block_scale_128x4(x), _moved(x, dst))


@pytest.mark.parametrize("dtype,layout", [(torch.uint8, (16, 16)), (torch.bfloat16, (16, 16)), (torch.uint8, (32, 32))])
def test_aiter_shuffle_weight_formula(dtype, layout):
    bn, ik = layout
    bk = 2 * ik
    n, kcols = 2 * bn, 2 * bk
    x = _rand((2, n, kcols * (2 if dtype == torch.bfloat16 else 1)), 4).view(dtype)
    kp = 16 // x.element_size()
    def dst(i):
        e, row, col = i
        nb, ni = divmod(row, bn)
        kb, kr = divmod(col, bk)
        kc, ke = divmod(kr, kp)
        return e * n * kcols + (((nb * (kcols // bk) + kb) * (bk // kp) + kc) * bn + ni) * kp + ke
    assert torch.equal(L.aiter_shuffle_weight(x, layout).view(torch.uint8), _moved(x, dst).view(torch.uint8))


def test_aiter_shuffle_scale_formula_and_padding():
    x = _rand((64, 16), 5)
    m, n = 64, 16
    def dst(i):
        row, col = i
        a, r = divmod(row, 32)
        b, c = divmod(r, 16)  # row = a*32 + b*16 + c
        d, r2 = divmod(col, 8)
        e, f = divmod(r2, 4)  # col = d*8 + e*4 + f
        # stored order (a, d, f, c, e, b) with sizes (M/32, N/8, 4, 16, 2, 2)
        return ((((a * (n // 8) + d) * 4 + f) * 16 + c) * 2 + e) * 2 + b
    y = L.aiter_shuffle_scale(x)
    assert torch.equal(y, _moved(x, dst))
    # aiter pads M to 256 and N to 8 with 0x7F; the first M rows equal the unpadded shuffle
    p = L.aiter_shuffle_scale(x, pad=True)
    assert p.shape == (256, 16) and torch.equal(p[:64], y)
    assert torch.equal(L.aiter_shuffle_scale_inverse(p, shape=(64, 16)), x)
    odd = _rand((40, 5), 6).view(torch.float8_e8m0fnu)
    po = L.aiter_shuffle_scale(odd, pad=True)
    assert po.shape == (256, 8) and po.dtype == torch.float8_e8m0fnu
    back = L.aiter_shuffle_scale_inverse(po)
    assert torch.equal(back[:40, :5].view(torch.uint8), odd.view(torch.uint8))
    assert torch.all(back.view(torch.uint8)[40:] == 0x7F) and torch.all(back.view(torch.uint8)[:, 5:] == 0x7F)
    assert torch.equal(L.aiter_shuffle_scale_inverse(po, shape=(40, 5)).view(torch.uint8), odd.view(torch.uint8))


def test_trtllm_composites():
    e, i2, h = 2, 256, 64
    w13, s13 = _rand((e, i2, h // 2), 7), _rand((e, i2, h // 16), 8, torch.float8_e4m3fn)
    w, s = L.trtllm_fp4_w13_layout(w13, s13)
    assert torch.equal(w, L.shuffle_rows_32(L.interleave_gate_up(w13)))
    assert torch.equal(s.view(torch.uint8), L.interleave_block_scale_128x4(L.shuffle_rows_32(L.interleave_gate_up(s13))).view(torch.uint8))
    bw, bs = L.trtllm_fp4_w13_layout_inverse(w, s)
    assert torch.equal(bw, w13) and torch.equal(bs.view(torch.uint8), s13.view(torch.uint8))
    w2, s2 = _rand((e, 128, 16), 9), _rand((e, 128, 8), 10, torch.float8_e4m3fn)
    a, b = L.trtllm_fp4_w2_layout(w2, s2)
    assert torch.equal(a, L.shuffle_rows_32(w2))
    ra, rb = L.trtllm_fp4_w2_layout_inverse(a, b)
    assert torch.equal(ra, w2) and torch.equal(rb.view(torch.uint8), s2.view(torch.uint8))


@pytest.mark.parametrize(
    "fn,shape,msg",
    [
        (L.shuffle_rows_32, (2, 48, 4), "rows=48"),
        (L.interleave_gate_up, (2, 7, 4), "rows=7"),
        (L.interleave_block_scale_128x4, (2, 64, 8), "rows M=64"),
        (L.interleave_block_scale_128x4, (128, 6), "cols K=6"),
        (L.aiter_shuffle_weight, (24, 32), "rows N=24"),
        (L.aiter_shuffle_scale, (64, 12), "cols N=12"),
        (L.shuffle_rows_32, (32,), "at least 2 dims"),
    ],
)
def test_bad_shapes_raise(fn, shape, msg):
    with pytest.raises(ValueError, match=msg):
        fn(_rand(shape, 11))
