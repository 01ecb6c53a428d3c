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


# The evaluator's registers are int64 tensors of 32-bit values (16-bit ones for .b16), one element per lane.
def _f32(bits: torch.Tensor) -> torch.Tensor:
    return (((bits & M32) ^ 2**31) - 2**31).to(torch.int32).view(torch.float32)


def _f32_bits(v: torch.Tensor) -> torch.Tensor:
    return v.to(torch.float32).view(torch.int32).to(torch.int64) & M32


def _half_f32(bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A 16-bit pattern (low bits) read as bf16 or fp16, in float32."""
    return (((bits & 0xFFFF) ^ 2**15) - 2**15).to(torch.int16).view(dtype).float()


def _bf16_bits(v: torch.Tensor, satfinite: bool = False) -> torch.Tensor:
    if satfinite:  # infinities saturate to the largest finite bf16; NaN stays NaN
        v = torch.where(v.isinf(), v.sign() * torch.finfo(torch.bfloat16).max, v)
    return v.to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xFFFF


def _pack(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return lo | hi << 16


def run_ptx(text: str, args: dict) -> dict:
    """Evaluate the integer, conversion and float instructions the GEMV's PTX helpers use. Registers
    are int64 tensors (or ints) of their bits; each element is one lane's value."""
    regs = {k: torch.as_tensor(v, dtype=torch.int64) for k, v in args.items()}

    def val(x: str) -> torch.Tensor:
        return regs[x] if x in regs else torch.tensor(int(x, 0) & M32)

    for line in text.replace("{\n", "\n").replace("\n}", "\n").splitlines():
        line = line.strip().rstrip(";")
        if not line or line.startswith(".reg"):
            continue
        op, rest = line.split(None, 1)
        if op == "mov.b32" and rest.startswith("{"):  # unpack a 32-bit register into its two halves
            halves, src = rest[1:].split("}")
            lo, hi = (t.strip() for t in halves.split(","))
            regs[lo], regs[hi] = val(src.strip(" ,")) & 0xFFFF, val(src.strip(" ,")) >> 16
            continue
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
            a, b, c = val(src[0]), val(src[1]), val(src[2])
            regs[d] = _pack(*(_bf16_bits(_half_f32(a >> s, torch.bfloat16) * _half_f32(b >> s, torch.bfloat16)
                                         + _half_f32(c >> s, torch.bfloat16)) for s in (0, 16)))
        elif op == "cvt.f32.f16":
            regs[d] = _f32_bits(_half_f32(val(src[0]), torch.float16))
        elif op in ("cvt.rn.bf16x2.f32", "cvt.rn.satfinite.bf16x2.f32"):  # d = {bf16(src[0]) high, bf16(src[1]) low}
            sat = "satfinite" in op
            regs[d] = _pack(_bf16_bits(_f32(val(src[1])), sat), _bf16_bits(_f32(val(src[0])), sat))
        elif op == "sub.f32":
            regs[d] = _f32_bits(_f32(val(src[0])) - _f32(val(src[1])))
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
    stored = [layouts._map_word(plain) if tiled else plain for plain in words]
    regs = run_ptx(text, {"$4": stored, "$5": scale_reg})
    for i, plain in enumerate(words):
        got = [(_bf16(int(regs[f"${j}"][i])), _bf16(int(regs[f"${j}"][i]) >> 16)) for j in range(4)]
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


def test_f16_parts_ptx_splits_every_fp16_into_two_exact_bf16_parts():
    """fp16 activations reach the bf16 mmas as hi + lo (fvm._F16_PARTS): for every fp16 value, in
    both halves of a word, hi is x rounded to bf16 and hi + lo == x exactly; infinities give hi =
    +-max bf16 and lo = +-inf (their products stay infinite), NaN gives a NaN hi."""
    v = torch.arange(2**16, dtype=torch.int64)
    words = v | v.roll(12345) << 16  # every pattern in the low half and in the high half
    regs = run_ptx(fvm._F16_PARTS.value, {"$2": words})
    for shift, x_bits in ((0, v), (16, v.roll(12345))):
        x = _half_f32(x_bits, torch.float16).double()
        hi = _half_f32(regs["$0"] >> shift, torch.bfloat16).double()
        lo = _half_f32(regs["$1"] >> shift, torch.bfloat16).double()
        finite = x.isfinite()
        assert torch.equal(hi[finite], x[finite].to(torch.bfloat16).double())
        assert torch.equal((hi + lo)[finite], x[finite])
        inf = x.isinf()
        assert torch.equal(hi[inf], x[inf].sign() * torch.finfo(torch.bfloat16).max) and torch.equal(lo[inf], x[inf])
        assert hi[x.isnan()].isnan().all()
