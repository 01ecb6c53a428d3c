"""Weight/scale layout transforms that kernels expect, each with its exact inverse.

All transforms keep shape and dtype (except aiter_shuffle_scale(pad=True), which pads like aiter),
treat leading dims as experts, and move raw bytes (1-byte dtypes are viewed as uint8, so float8
and e8m0 tensors work on any torch build).

TRT-LLM FP4 MoE (qcert UPSTREAM.md section 4, epilogue_tile_m = 128), per expert:
  w13 [2I, H/2]: interleave_gate_up, then shuffle_rows_32.      w2 [H, I/2]: shuffle_rows_32.
  block scales: the same row permutation, then interleave_block_scale_128x4.

AMD aiter MXFP4 (read from github.com/ROCm/aiter, aiter/ops/shuffle.py at commit
8d885022baff7b97d3ee458692dc448f0a08132c: `shuffle_weight(x, layout=(16, 16))` and
`shuffle_scale(scale)`; the older `aiter/utility/fp4_utils.py::e8m0_shuffle` (commit
582ae3f74c55f5c6421fcc3bd80fec50e366b21d and earlier) is the same permutation, it only pads with
uninitialised memory where shuffle_scale pads with 0x7F = 1.0):
  aiter_shuffle_weight: rows in tiles of IN=16, bytes in tiles of BK=2*IK=32 split into chunks of
    16 bytes (16 // element_size elements); tile order (row tile, k tile, k chunk, row, byte).
  aiter_shuffle_scale: e8m0 [M, N] (N = K/32) viewed (M/32, 2, 16, N/8, 2, 4) and permuted
    (0, 3, 5, 2, 4, 1); aiter pads M to a multiple of 256 and N to a multiple of 8 first.
The code below is our own implementation of those permutations.

qcert's FP4 GEMV tiles (`fp4_tiles`, consumed by triton_tiles: kernels/triton/fp4_gemv_mma.py),
per 16 rows x 128 columns (a "block": one warp's mma step):
  weights [N, K/2]: block (tile t, step s) is 1 KB, two halves (rows 0-7, rows 8-15 of the tile),
    each 32 lanes x 16 bytes, lane l = 4g + c holding row g's bytes 16c..16c+15 of the step. The
    blocks of a tile follow each other along K, the tiles along N.
  scales [N, K/G]: block (t, s) holds, per lane, its rows' scales of its 32 columns: MXFP4 2 bytes
    (row g, row g + 8), NVFP4 4 bytes (row g's two groups, then row g + 8's).
  One warp instruction then reads 512 contiguous bytes of weights and 64 or 128 of scales; the
  plain layout spreads it over 8 rows (an H100 load-only probe: 13 us against 17.5 us per
  N = K = 8192 MXFP4 matrix with the activation loads of M = 8; bench/results/h100-triton.md).
  Inside each 4-byte word (8 codes, code j at bits 4j..4j+3 in the plain layout) the bits are then
  mapped by a fixed linear map over GF(2) (TILE_WORD_DECODE) that lets the GEMV decode a pair of
  codes in two integer instructions instead of four.
"""

from __future__ import annotations

import functools

import torch

__all__ = [
    "aiter_shuffle_scale",
    "aiter_shuffle_scale_inverse",
    "aiter_shuffle_weight",
    "aiter_shuffle_weight_inverse",
    "fp4_tiles",
    "fp4_tiles_inverse",
    "fp4_tiles_fit",
    "fp4_words",
    "fp4_words_inverse",
    "tile_word_registers",
    "TILE_WORD_DECODE",
    "TILE_WORD_MASK",
    "TILE_WORD_PAIRS",
    "interleave_block_scale_128x4",
    "interleave_block_scale_128x4_inverse",
    "interleave_gate_up",
    "interleave_gate_up_inverse",
    "shuffle_rows_32",
    "shuffle_rows_32_inverse",
    "trtllm_fp4_w13_layout",
    "trtllm_fp4_w13_layout_inverse",
    "trtllm_fp4_w2_layout",
    "trtllm_fp4_w2_layout_inverse",
    "SHUFFLE_32",
]

# Within a 32-row block, new row r takes old row SHUFFLE_32[r] = (r % 8) * 4 + r // 8.
SHUFFLE_32 = [(r % 8) * 4 + r // 8 for r in range(32)]
_UNSHUFFLE_32 = [SHUFFLE_32.index(r) for r in range(32)]


def _bytes(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.uint8) if t.element_size() == 1 and t.dtype != torch.uint8 else t


def _like(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return out.view(t.dtype) if out.dtype != t.dtype else out


def _need(t: torch.Tensor, what: str, min_dim: int = 2) -> None:
    if t.dim() < min_dim:
        raise ValueError(f"{what}: expected at least {min_dim} dims [..., M, X], got shape {tuple(t.shape)}")


def _need_multiple(n: int, m: int, what: str, name: str, shape) -> None:
    if n % m:
        raise ValueError(f"{what}: {name}={n} must be a multiple of {m} (shape {tuple(shape)})")


# --- TRT-LLM ----------------------------------------------------------------------------------


def _row_perm_32(w: torch.Tensor, perm: list[int], what: str) -> torch.Tensor:
    _need(w, what)
    m = w.shape[-2]
    _need_multiple(m, 32, what, "rows", w.shape)
    b = _bytes(w)
    blocks = b.reshape(*b.shape[:-2], m // 32, 32, b.shape[-1])
    idx = torch.tensor(perm, device=w.device)
    return _like(blocks.index_select(-2, idx).reshape(b.shape), w)


def shuffle_rows_32(w: torch.Tensor) -> torch.Tensor:
    """[..., M, X], M % 32 == 0: within each 32-row block new row r <- old (r % 8) * 4 + r // 8."""
    return _row_perm_32(w, SHUFFLE_32, "shuffle_rows_32")


def shuffle_rows_32_inverse(w: torch.Tensor) -> torch.Tensor:
    return _row_perm_32(w, _UNSHUFFLE_32, "shuffle_rows_32_inverse")


def interleave_gate_up(w13: torch.Tensor) -> torch.Tensor:
    """[..., 2I, X] rows [gate; up] -> new row 2i <- gate i, 2i+1 <- up i."""
    what = "interleave_gate_up"
    _need(w13, what)
    _need_multiple(w13.shape[-2], 2, what, "rows", w13.shape)
    b = _bytes(w13)
    i = b.shape[-2] // 2
    out = torch.stack((b[..., :i, :], b[..., i:, :]), dim=-2).reshape(b.shape)
    return _like(out, w13)


def interleave_gate_up_inverse(w13: torch.Tensor) -> torch.Tensor:
    what = "interleave_gate_up_inverse"
    _need(w13, what)
    _need_multiple(w13.shape[-2], 2, what, "rows", w13.shape)
    b = _bytes(w13)
    pairs = b.reshape(*b.shape[:-2], b.shape[-2] // 2, 2, b.shape[-1])
    return _like(torch.cat((pairs[..., 0, :], pairs[..., 1, :]), dim=-2), w13)


def _scale_128x4_dims(s: torch.Tensor, what: str):
    _need(s, what)
    m, k = s.shape[-2:]
    _need_multiple(m, 128, what, "rows M", s.shape)
    _need_multiple(k, 4, what, "cols K", s.shape)
    return m, k


def interleave_block_scale_128x4(s: torch.Tensor) -> torch.Tensor:
    """[..., M, K] per expert: reshape(M/128, 4, 32, K/4, 4).permute(0, 3, 2, 1, 4)."""
    m, k = _scale_128x4_dims(s, "interleave_block_scale_128x4")
    b = _bytes(s)
    lead = b.shape[:-2]
    v = b.reshape(-1, m // 128, 4, 32, k // 4, 4).permute(0, 1, 4, 3, 2, 5)
    return _like(v.contiguous().reshape(*lead, m, k), s)


def interleave_block_scale_128x4_inverse(s: torch.Tensor) -> torch.Tensor:
    m, k = _scale_128x4_dims(s, "interleave_block_scale_128x4_inverse")
    b = _bytes(s)
    lead = b.shape[:-2]
    # the stored order is (M/128, K/4, 32, 4, 4); swapping the 4-row group and K/4 axes back
    v = b.reshape(-1, m // 128, k // 4, 32, 4, 4).permute(0, 1, 4, 3, 2, 5)
    return _like(v.contiguous().reshape(*lead, m, k), s)


def trtllm_fp4_w13_layout(w13: torch.Tensor, w13_scale: torch.Tensor):
    """w13 [E, 2I, H/2] uint8 + scale [E, 2I, H/16] e4m3 -> TRT-LLM gated layout."""
    w = shuffle_rows_32(interleave_gate_up(w13))
    s = interleave_block_scale_128x4(shuffle_rows_32(interleave_gate_up(w13_scale)))
    return w, s


def trtllm_fp4_w13_layout_inverse(w13: torch.Tensor, w13_scale: torch.Tensor):
    w = interleave_gate_up_inverse(shuffle_rows_32_inverse(w13))
    s = interleave_gate_up_inverse(shuffle_rows_32_inverse(interleave_block_scale_128x4_inverse(w13_scale)))
    return w, s


def trtllm_fp4_w2_layout(w2: torch.Tensor, w2_scale: torch.Tensor):
    """w2 [E, H, I/2] + scale [E, H, I/16]: row shuffle only, scales also 128x4-interleaved."""
    return shuffle_rows_32(w2), interleave_block_scale_128x4(shuffle_rows_32(w2_scale))


def trtllm_fp4_w2_layout_inverse(w2: torch.Tensor, w2_scale: torch.Tensor):
    return shuffle_rows_32_inverse(w2), shuffle_rows_32_inverse(interleave_block_scale_128x4_inverse(w2_scale))


# --- AMD aiter ---------------------------------------------------------------------------------


def _aiter_weight_dims(w: torch.Tensor, layout, what: str):
    _need(w, what)
    bn, ik = layout
    bk = 2 * ik
    kp = 16 // w.element_size()  # elements per 16-byte chunk
    n, k = w.shape[-2:]
    _need_multiple(n, bn, what, "rows N", w.shape)
    _need_multiple(k, bk, what, "cols", w.shape)
    _need_multiple(bk, kp, what, "2*IK", w.shape)
    return n, k, bn, bk, kp


def aiter_shuffle_weight(w: torch.Tensor, layout: tuple[int, int] = (16, 16)) -> torch.Tensor:
    """aiter's shuffle_weight on [..., N, Kbytes] (packed uint8 for MXFP4)."""
    n, k, bn, bk, kp = _aiter_weight_dims(w, layout, "aiter_shuffle_weight")
    b = _bytes(w)
    v = b.reshape(-1, n // bn, bn, k // bk, bk // kp, kp).permute(0, 1, 3, 4, 2, 5)
    return _like(v.contiguous().reshape(b.shape), w)


def aiter_shuffle_weight_inverse(w: torch.Tensor, layout: tuple[int, int] = (16, 16)) -> torch.Tensor:
    n, k, bn, bk, kp = _aiter_weight_dims(w, layout, "aiter_shuffle_weight_inverse")
    b = _bytes(w)
    v = b.reshape(-1, n // bn, k // bk, bk // kp, bn, kp).permute(0, 1, 4, 2, 3, 5)
    return _like(v.contiguous().reshape(b.shape), w)


_AITER_SCALE_PAD = 0x7F  # e8m0 1.0, what aiter's shuffle_scale fills padding with


def aiter_shuffle_scale(s: torch.Tensor, pad: bool = False) -> torch.Tensor:
    """aiter's e8m0 scale shuffle on [..., M, N] (N = K/32).

    pad=False: needs M % 32 == 0 and N % 8 == 0; shape unchanged. For M % 256 != 0 these are the
    first M rows of aiter's padded output (32-row groups are independent).
    pad=True: pads M to a multiple of 256 and N to a multiple of 8 with 0x7F first, like aiter.
    """
    what = "aiter_shuffle_scale"
    _need(s, what)
    b = _bytes(s)
    if pad:
        m, n = b.shape[-2:]
        pm, pn = -(-m // 256) * 256, -(-n // 8) * 8
        padded = torch.full((*b.shape[:-2], pm, pn), _AITER_SCALE_PAD, dtype=b.dtype, device=b.device)
        padded[..., :m, :n] = b
        b = padded
    m, n = b.shape[-2:]
    _need_multiple(m, 32, what, "rows M", s.shape)
    _need_multiple(n, 8, what, "cols N", s.shape)
    v = b.reshape(-1, m // 32, 2, 16, n // 8, 2, 4).permute(0, 1, 4, 6, 3, 5, 2)
    return _like(v.contiguous().reshape(b.shape), s)


def aiter_shuffle_scale_inverse(s: torch.Tensor, shape: "tuple[int, int] | None" = None) -> torch.Tensor:
    """Undo aiter_shuffle_scale; shape=(M, N) crops aiter's padding back off."""
    what = "aiter_shuffle_scale_inverse"
    _need(s, what)
    b = _bytes(s)
    m, n = b.shape[-2:]
    _need_multiple(m, 32, what, "rows M", s.shape)
    _need_multiple(n, 8, what, "cols N", s.shape)
    # stored order is (M/32, N/8, 4, 16, 2, 2) = (a, d, f, c, e, b); back to (a, b, c, d, e, f)
    v = b.reshape(-1, m // 32, n // 8, 4, 16, 2, 2).permute(0, 1, 6, 4, 2, 5, 3)
    out = v.contiguous().reshape(b.shape)
    if shape is not None:
        om, on = shape
        if om > m or on > n:
            raise ValueError(f"{what}: crop shape {tuple(shape)} larger than {(m, n)}")
        out = out[..., :om, :on].contiguous()
    return _like(out, s)


# --- qcert FP4 GEMV tiles --------------------------------------------------------------------------

# (plain view, tiled view) of one tile's steps, as permutations of reshaped dims. Weights: plain
# [T, half, g, S, c, 16] -> tiled [T, S, half, g, c, 16]; scales with P scales per lane chunk
# (MXFP4 1, NVFP4 2): plain [T, half, g, S, c, P] -> tiled [T, S, g, c, half, P].
_W_PERM, _S_PERM = (0, 3, 1, 2, 4, 5), (0, 3, 2, 4, 1, 5)


def fp4_tiles_fit(n: int, k: int) -> bool:
    """Whether an [N, K] FP4 weight can take the tile layout: whole 16-row tiles, 128-column steps."""
    return n > 0 and n % 16 == 0 and k % 128 == 0


def _tile_dims(w: torch.Tensor, s: torch.Tensor, what: str) -> tuple[int, int, int]:
    if w.dim() != 2 or s.dim() != 2 or s.shape[0] != w.shape[0]:
        raise ValueError(f"{what}: expected weight [N, K/2] and scales [N, K/G], got {tuple(w.shape)} and {tuple(s.shape)}")
    n, k = w.shape[0], 2 * w.shape[1]
    if not fp4_tiles_fit(n, k):
        raise ValueError(f"{what}: N={n} must be a multiple of 16 and K={k} of 128 (weight {tuple(w.shape)})")
    per = s.shape[1] * 32 // k  # scales per 32-column lane chunk: 1 (MXFP4, G = 32) or 2 (NVFP4, G = 16)
    if per not in (1, 2) or s.shape[1] * 32 != per * k:
        raise ValueError(f"{what}: scales {tuple(s.shape)} are not one per 32 or 16 columns of K={k}")
    return n // 16, k // 128, per


def _permute(t: torch.Tensor, shape: tuple, perm: tuple, inverse: bool) -> torch.Tensor:
    b = _bytes(t)
    if inverse:
        tiled = [shape[i] for i in perm]
        out = b.reshape(tiled).permute([perm.index(i) for i in range(len(perm))])
    else:
        out = b.reshape(shape).permute(perm)
    return _like(out.reshape(b.shape).contiguous(), t)


def _fp4_tiles(w: torch.Tensor, s: torch.Tensor, inverse: bool, what: str):
    t, steps, per = _tile_dims(w, s, what)
    # the permutation moves whole 16-byte lane pieces, so it commutes with the per-word map
    return (_permute(_mapped(w, inverse), (t, 2, 8, steps, 4, 16), _W_PERM, inverse),
            _permute(s, (t, 2, 8, steps, 4, per), _S_PERM, inverse))


# The word map. The GEMV decodes a word into 4 bf16x2 registers, register j holding codes 2j and
# 2j + 1 (TILE_WORD_PAIRS: the column pairs of the activations' bf16x2 words, so these need no
# permute) as the bf16 bits of e2m1 * 2^-126: signs at bits 15 / 31, magnitudes (e1 e0 m) at 8..6 /
# 24..22, all other bits 0 (TILE_WORD_MASK). Register j is (word << a) [^ (word << b)] & mask for
# the (shift, rotate) terms of TILE_WORD_DECODE[j] (a negative shift is a logical right shift).
# Stored words are the plain ones under the inverse of that linear map. One register needs two
# terms: four translates of the mask's bits cannot cover a 32-bit word.
TILE_WORD_MASK = 0x81C081C0
TILE_WORD_DECODE = (((0, False),), ((4, False),), ((10, True),), ((-2, False), (6, False)))
TILE_WORD_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7))


def _shifted(w: int, amount: int, rotate: bool) -> int:
    if rotate:
        return ((w << amount) | (w >> (32 - amount))) & 0xFFFFFFFF
    return (w << amount) & 0xFFFFFFFF if amount >= 0 else w >> -amount


def tile_word_registers(stored: int) -> list[int]:
    """The GEMV's 4 decode registers of one stored word (Python ints; the spec the kernels follow)."""
    out = []
    for terms in TILE_WORD_DECODE:
        x = 0
        for amount, rotate in terms:
            x ^= _shifted(stored, amount, rotate)
        out.append(x & TILE_WORD_MASK)
    return out


def _registers_wanted(plain: int) -> list[int]:
    def bf16(code: int) -> int:
        return (code & 8) << 12 | (code & 7) << 6

    return [bf16(plain >> 4 * lo & 15) | bf16(plain >> 4 * hi & 15) << 16 for lo, hi in TILE_WORD_PAIRS]


def _plain_of_registers(regs: list[int]) -> int:
    def code(half: int) -> int:
        return (half >> 12 & 8) | (half >> 6 & 7)

    return sum(code(r & 0xFFFF) << 4 * lo | code(r >> 16) << 4 * hi for (lo, hi), r in zip(TILE_WORD_PAIRS, regs))


def _word_tables() -> tuple[list[list[int]], list[list[int]]]:
    """(encode table [8 nibbles][16 codes], decode table [4 bytes][256 values]) of the word map,
    XOR-combined per word (the map is linear). The encode solves registers(stored) = wanted(plain)
    over GF(2) by Gauss-Jordan on the 32 x 32 system."""
    bits = [b for b in range(32) if TILE_WORD_MASK >> b & 1]

    def packed(regs):  # the 4 registers' 8 meaningful bits each -> one 32-bit vector
        return sum((r >> b & 1) << (8 * j + i) for j, r in enumerate(regs) for i, b in enumerate(bits))

    cols = [packed(tile_word_registers(1 << p)) for p in range(32)]  # image of stored bit p
    rows = [[sum((cols[p] >> i & 1) << p for p in range(32)), 1 << i] for i in range(32)]
    for c in range(32):
        pivot = next(i for i in range(c, 32) if rows[i][0] >> c & 1)
        rows[c], rows[pivot] = rows[pivot], rows[c]
        for i in range(32):
            if i != c and rows[i][0] >> c & 1:
                rows[i][0] ^= rows[c][0]
                rows[i][1] ^= rows[c][1]
    inverse = [r[1] for r in rows]  # stored bit i = parity of (inverse[i] & packed registers)

    def encode(plain: int) -> int:
        want = packed(_registers_wanted(plain))
        return sum((bin(inverse[i] & want).count("1") & 1) << i for i in range(32))

    enc = [[encode(code << 4 * j) for code in range(16)] for j in range(8)]
    dec = [[_plain_of_registers(tile_word_registers(v << 8 * b)) for v in range(256)] for b in range(4)]
    return enc, dec


_WORD_TABLES = _word_tables()


def _map_word(plain: int) -> int:
    """One plain word (Python int) -> as stored in the tile layout."""
    out = 0
    for j, table in enumerate(_WORD_TABLES[0]):
        out ^= table[plain >> 4 * j & 15]
    return out


@functools.lru_cache(maxsize=None)
def _word_lut(inverse: bool, device: torch.device) -> torch.Tensor:
    """The word map's tables as int32 on `device` (built once per device: the engine maps chunk by chunk)."""
    table = _WORD_TABLES[1] if inverse else _WORD_TABLES[0]
    return torch.tensor([[v - (1 << 32) if v >= 1 << 31 else v for v in t] for t in table], dtype=torch.int32,
                        device=device)


def _map_words(b: torch.Tensor, inverse: bool) -> torch.Tensor:
    """Contiguous uint8 [..., K/2] (rows of whole words) -> the same with every word mapped (or unmapped)."""
    width = 8 if inverse else 4  # bits per table index: bytes when unmapping, nibbles when mapping
    lut = _word_lut(inverse, b.device)
    w = b.contiguous().view(torch.int32)
    out = torch.zeros_like(w)
    for i, t in enumerate(lut):
        out ^= t[((w >> (width * i)) & ((1 << width) - 1)).long()]
    return out.view(torch.uint8)


def _mapped(w: torch.Tensor, inverse: bool) -> torch.Tensor:
    """Packed FP4 weights with every word mapped (or unmapped), same dtype and shape."""
    return _like(_map_words(_bytes(w), inverse), w)


def _fp4_words(w: torch.Tensor, s: torch.Tensor, inverse: bool, what: str):
    if w.dim() < 2 or w.shape[-1] % 4:
        raise ValueError(f"{what}: expected packed weights [..., N, K/2] with K a multiple of 8, got {tuple(w.shape)}")
    return _mapped(w, inverse), s


def fp4_words(w: torch.Tensor, s: torch.Tensor):
    """FP4 weights [..., N, K/2] (K a multiple of 8) and block scales -> the weights' words under the
    word map, rows and scales where they were (the MoE's grouped GEMMs read it)."""
    return _fp4_words(w, s, False, "fp4_words")


def fp4_words_inverse(w: torch.Tensor, s: torch.Tensor):
    return _fp4_words(w, s, True, "fp4_words_inverse")


def fp4_tiles(w: torch.Tensor, s: torch.Tensor):
    """Plain FP4 weight [N, K/2] and block scales [N, K/G] -> the GEMV tile layout (same shapes)."""
    return _fp4_tiles(w, s, False, "fp4_tiles")


def fp4_tiles_inverse(w: torch.Tensor, s: torch.Tensor):
    return _fp4_tiles(w, s, True, "fp4_tiles_inverse")
