"""The tensor-core GEMV's inline-PTX decodes, run on CPU by a small evaluator of the PTX they are
made of, against the e2m1 values of the words' codes: the plain layout's decode, and the tile
layout's (words stored under layouts' word map). The GPU tests run the same text compiled; this
catches a wrong shift, mask or register before a GPU does."""

import struct

import pytest
import torch

from qcert.kernels import layouts
from qcert.kernels.fp4 import E2M1_VALUES

fvm = pytest.importorskip("qcert.kernels.triton.fp4_gemv_mma")

M32 = 0xFFFFFFFF


def _bf16(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", (bits & 0xFFFF) << 16))[0]


def _to_bf16(v: float) -> int:
    return int(torch.tensor([v], dtype=torch.float32).to(torch.bfloat16).view(torch.int16)[0]) & 0xFFFF


def _fma_bf16x2(a: int, b: int, c: int) -> int:
    halves = [_to_bf16(_bf16(a >> s) * _bf16(b >> s) + _bf16(c >> s)) for s in (0, 16)]
    return halves[0] | halves[1] << 16


def run_ptx(text: str, args: dict[str, int]) -> dict[str, int]:
    """Evaluate the integer and bf16x2 instructions the decodes use; registers are Python ints."""
    regs = dict(args)

    def val(x: str) -> int:
        return regs[x] if x in regs else int(x, 0) & M32

    for line in text.replace("{", "\n").replace("}", "\n").splitlines():
        line = line.strip().rstrip(";")
        if not line or line.startswith(".reg"):
            continue
        op, rest = line.split(None, 1)
        d, *src = [t.strip() for t in rest.split(",")]
        if op == "mov.b32":
            regs[d] = val(src[0])
        elif op in ("and.b32", "or.b32", "xor.b32"):
            a, b = val(src[0]), val(src[1])
            regs[d] = {"and.b32": a & b, "or.b32": a | b, "xor.b32": a ^ b}[op]
        elif op == "shl.b32":
            regs[d] = val(src[0]) << int(src[1]) & M32
        elif op == "shr.b32":  # .b32: logical
            regs[d] = val(src[0]) >> int(src[1])
        elif op == "shf.l.wrap.b32":  # funnel shift of (src[1]:src[0]) left, the amount taken mod 32
            n = int(src[2]) % 32
            regs[d] = ((val(src[1]) << 32 | val(src[0])) << n >> 32) & M32
        elif op == "fma.rn.bf16x2":
            regs[d] = _fma_bf16x2(val(src[0]), val(src[1]), val(src[2]))
        else:
            raise AssertionError(f"the evaluator does not know {op!r} (line {line!r})")
    return regs


def _wanted(plain: int, scale: float, pairs) -> list[tuple[float, float]]:
    code = [plain >> 4 * j & 15 for j in range(8)]
    return [(float(E2M1_VALUES[code[lo]]) * scale, float(E2M1_VALUES[code[hi]]) * scale) for lo, hi in pairs]


@pytest.mark.parametrize("tiled", [False, True], ids=["plain", "tiles"])
@pytest.mark.parametrize("kind", ["mxfp4", "nvfp4"])
def test_decode_ptx_gives_each_registers_codes(tiled, kind):
    """MXFP4 multiplies 2^126 and its scale; NVFP4 only its scale, which carries the 2^126. Every
    code in every position, signs and zeros included, over random words and the 16 constant ones."""
    make = fvm._tile_decode_ptx if tiled else fvm._decode_ptx
    pairs = layouts.TILE_WORD_PAIRS if tiled else [(j, j + 4) for j in range(4)]
    text = make(kind == "mxfp4")
    scale = 0.25
    scale_reg = _to_bf16(scale if kind == "mxfp4" else scale * 2.0**126) * 0x10001
    gen = torch.Generator().manual_seed(7)
    words = [c * 0x11111111 for c in range(16)] + torch.randint(0, 2**32, (300,), generator=gen).tolist()
    for plain in words:
        stored = layouts._map_word(plain) if tiled else plain
        regs = run_ptx(text, {"$4": stored, "$5": scale_reg})
        got = [(_bf16(regs[f"${j}"]), _bf16(regs[f"${j}"] >> 16)) for j in range(4)]
        want = _wanted(plain, scale, pairs)
        assert got == want, f"word {plain:#010x}: {got} != {want}"
        signs = [(struct.pack("<f", a)[3] >> 7, struct.pack("<f", b)[3] >> 7) for a, b in got]
        assert signs == [((plain >> 4 * lo + 3) & 1, (plain >> 4 * hi + 3) & 1) for lo, hi in pairs], "sign of zero"


def test_tile_word_map_round_trips_and_matches_its_registers():
    """layouts' word map on tensors (nibble/byte tables) against the Python spec the kernels follow."""
    gen = torch.Generator().manual_seed(3)
    b = torch.randint(0, 256, (16, 64), dtype=torch.uint8, generator=gen)
    mapped = layouts._map_words(b, False)
    assert torch.equal(layouts._map_words(mapped, True), b)
    for plain, stored in zip(b.view(torch.int32).flatten().tolist()[:64], mapped.view(torch.int32).flatten().tolist()):
        assert stored & M32 == layouts._map_word(plain & M32)
        assert layouts.tile_word_registers(stored & M32) == layouts._registers_wanted(plain & M32)


def test_word_map_refuses_rows_of_partial_words():
    with pytest.raises(ValueError, match=r"fp4_words: .*K a multiple of 8.*\(4, 6\)"):
        layouts.fp4_words(torch.zeros(4, 6, dtype=torch.uint8), None)
