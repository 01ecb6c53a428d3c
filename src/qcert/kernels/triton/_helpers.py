"""Device helpers handed to kernels as constexpr arguments (see _launch.Kernel).

Plain functions in the triton language; each is jitted or interpreted along with its kernel.
All decodes are exact and written from the bit layouts in kernels/fp4.py and kernels/fp8.py.
"""

import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction


def ptx_e2m1_bf16x2(dst: str, sign: str, mag: str) -> str:
    """PTX text (not a device function) shared by the inline-asm decodes: two e2m1 codes as a
    bf16x2 of e2m1 * 2^-126. Register `sign` holds the codes' sign bits at bits 15 and 31, `mag`
    their (e1 e0 m) at bits 8..6 and 24..22 (other bits of both are masked off; `mag` is
    overwritten): a bf16 with exponent e and mantissa m/2 is 2^(e-127)(1 + m/2), and the subnormal
    2^-127 for code 1, so times 2^126 (0x7E80) it is exactly the e2m1 value."""
    return f"and.b32 {dst}, {sign}, 0x80008000;\nand.b32 {mag}, {mag}, 0x01C001C0;\nor.b32 {dst}, {dst}, {mag};\n"


def rowmax(x):
    """Max over axis 1 (compiled kernels: triton's own tl.max)."""
    return tl.max(x, 1)


def _maximum(a, b):
    return tl.maximum(a, b)


_MAXIMUM_INTERPRETED = InterpretedFunction(_maximum)


def rowmax_interpreted(x):
    """Max over axis 1 for the interpreter, whose tl.max may be bound to compiled mode."""
    return tl.reduce(x, 1, _MAXIMUM_INTERPRETED)


def lastsum(x):
    """Sum over the last axis (compiled kernels: triton's own tl.sum)."""
    return tl.sum(x, len(x.shape) - 1)


def _add(a, b):
    return a + b


_ADD_INTERPRETED = InterpretedFunction(_add)


def lastsum_interpreted(x):
    """Sum over the last axis for the interpreter, whose tl.sum may be bound to compiled mode."""
    return tl.reduce(x, len(x.shape) - 1, _ADD_INTERPRETED)


def cumsum(x):
    """Inclusive prefix sum along axis 0 (compiled kernels: triton's own tl.cumsum)."""
    return tl.cumsum(x, 0)


def cumsum_interpreted(x):
    """Inclusive prefix sum along axis 0 for the interpreter, whose tl.cumsum may be bound to compiled mode."""
    return tl.associative_scan(x, 0, _ADD_INTERPRETED)


def fp4_to_f32(code):
    """e2m1 code (int32, 0..15) -> float32, exact. Its magnitude bits (e1 e0 m) placed as float32
    exponent and mantissa bits (bits 24..22) are the value times 2^-126 (2^(e-127)(1 + m/2), and
    the subnormal 2^-127 for code 1, as in ptx_e2m1_bf16x2), so one multiply by 2^126 finishes it
    (PTX mul.f32 keeps subnormals); bit 3 is the sign."""
    bits = ((code & 7) << 22) | ((code & 8) << 28)
    return bits.to(tl.float32, bitcast=True) * 8.507059173023462e37  # 2^126


def tile_words_to_f32(w):
    """Words of layouts.fp4_tiles (int32 [R, W], 8 codes each under the tile layout's word map) ->
    their e2m1 values [R, 8 W] in K order, float32, exact. Register j of the map (layouts.
    TILE_WORD_DECODE, written out here) holds codes 2j and 2j + 1 as bf16 bits of e2m1 * 2^-126;
    each half moved to the top of a float32 is that value in float32, times 2^126 (fp4_to_f32)."""
    u = w.to(tl.uint32, bitcast=True)
    mask = 0x81C081C0
    r0 = u & mask
    r1 = (u << 4) & mask
    r2 = ((u << 10) | (u >> 22)) & mask
    r3 = ((u >> 2) ^ (u << 6)) & mask
    # code 2j + half: joined on axes (j's bit 1, j's bit 0, half), each join adding the last axis
    lo = tl.join(tl.join(r0 << 16, r2 << 16), tl.join(r1 << 16, r3 << 16))
    hi = tl.join(tl.join(r0 & 0xFFFF0000, r2 & 0xFFFF0000), tl.join(r1 & 0xFFFF0000, r3 & 0xFFFF0000))
    codes = tl.join(lo, hi)
    bits = tl.reshape(codes, (w.shape[0], w.shape[1] * 8))
    return bits.to(tl.float32, bitcast=True) * 8.507059173023462e37  # 2^126


def e8m0_to_f32(u):
    """e8m0 byte (int32) -> 2^(u-127); 0 is the float32 subnormal 2^-127, 255 is NaN."""
    bits = tl.where(u == 0, 0x00400000, u << 23)
    return tl.where(u == 255, 0x7FC00000, bits).to(tl.float32, bitcast=True)


def e4m3_native(b):
    """float8_e4m3fn bits (int32) -> float32 by the hardware's conversion (compiled kernels; the
    interpreter's own flushes subnormals and reads 0x7F, NaN, as a number: e4m3_to_f32 there)."""
    return b.to(tl.uint8).to(tl.float8e4nv, bitcast=True).to(tl.float32)


def e4m3_to_f32(b):
    """float8_e4m3fn bits (int32, 0..255) -> float32; 0x7F/0xFF are NaN, exponent 0 subnormal."""
    ex = (b >> 3) & 15
    mt = b & 7
    v = tl.where(ex == 0, mt.to(tl.float32) * 0.001953125, (((ex + 120) << 23) | (mt << 20)).to(tl.float32, bitcast=True))
    v = tl.where((b & 127) == 127, float("nan"), v)
    return tl.where((b & 128) != 0, -v, v)


# e4m3 block scales as a kernel helper pair (_launch.Kernel): the hardware's conversion when compiled,
# bit arithmetic when interpreted
E4M3_SCALE = (e4m3_native, e4m3_to_f32)


def e2m1_code(a):
    """Magnitude (float32, >= 0) -> e2m1 magnitude code 0..7, round to nearest, ties to the even
    code, saturating at 6 (the thresholds of kernels/fp4.float_to_e2m1)."""
    return ((a > 0.25).to(tl.int32) + (a >= 0.75).to(tl.int32) + (a > 1.25).to(tl.int32)
            + (a >= 1.75).to(tl.int32) + (a > 2.5).to(tl.int32) + (a >= 3.5).to(tl.int32)
            + (a > 5.0).to(tl.int32))


def e4m3_round(a):
    """Non-negative float32 <= 448 -> nearest e4m3 value (ties to even), as float32. Normal range:
    round the mantissa to 3 bits on the integer bits; below 2^-6 steps are 2^-9 (magic-number add).
    Written by hand because the interpreter's fp32->fp8 cast flushes subnormals."""
    ab = a.to(tl.int32, bitcast=True)
    normal = ((ab + 0x7FFFF + ((ab >> 20) & 1)) & -1048576).to(tl.float32, bitcast=True)
    return tl.where(a >= 0.015625, normal, (a + 24576.0) - 24576.0)


def f32_to_e4m3_bits(q):
    """float32 (already within +-448) -> float8_e4m3fn bits (int32), RNE; NaN -> 0x7F."""
    a = tl.abs(q)
    ab = a.to(tl.int32, bitcast=True)
    rn = (ab + 0x7FFFF + ((ab >> 20) & 1)) & -1048576
    byte_n = ((((rn >> 23) & 255) - 120) << 3) | ((rn >> 20) & 7)
    byte_s = (((a + 24576.0) - 24576.0) * 512.0).to(tl.int32)  # 8 = 2^-6 is also right
    byte = tl.where(a >= 0.015625, byte_n, byte_s)
    byte = tl.where(q < 0, byte | 128, byte)
    return tl.where(q != q, 127, byte)


def split_last(count_ptr, SPLITS: tl.constexpr):
    """K split over SPLITS programs, after this one stored its partial sums: count it in on its tile's
    counter and say whether it came last (then it alone adds the partials, and it resets the counter
    for the next launch on the stream: _launch.split_counts). The barrier puts every thread's
    partials before the count's release; acq_rel gives the last program everyone's (read from L2)."""
    tl.debug_barrier()
    last = tl.atomic_add(count_ptr, 1, sem="acq_rel") == SPLITS - 1
    if last:
        tl.atomic_xchg(count_ptr, 0, sem="relaxed")
    return last


def split_sum(acc, part_ptrs, part_stride, mask, pid_k, count_ptr, SPLITS: tl.constexpr, SPLIT_LAST: tl.constexpr):
    """Split pid_k's fp32 sums `acc` (elements under `mask`) -> (the sum over the SPLITS splits, added
    in split order, so every run gives the same bits; `mask` where this program is the tile's last,
    which alone holds that sum and stores C, else all false). part_ptrs: split 0's partial of each
    element, split k's at k * part_stride on. (tl.where, not `mask & last`: the interpreter's `&` of a
    scalar and a tensor gives int32, which a store refuses as a mask.)"""
    tl.store(part_ptrs + pid_k * part_stride, acc, mask=mask)
    last = SPLIT_LAST(count_ptr, SPLITS)
    total = acc
    if last:
        total = tl.load(part_ptrs, mask=mask, other=0.0, cache_modifier=".cg")
        for k in range(1, SPLITS):
            total += tl.load(part_ptrs + k * part_stride, mask=mask, other=0.0, cache_modifier=".cg")
    return total, tl.where(last, mask, False)


def act_dot(x, w, acc, DOT: tl.constexpr, X_LEFT: tl.constexpr):
    """acc + x @ w (X_LEFT) or acc + w @ x: x the activations, w decoded weights (fp4 times its scale,
    or e4m3: at most 6 significant bits, exact in bf16 and tf32), DOT from _launch.dot_precision.
    "tf32x2": x as a tf32 part (its top 10 mantissa bits, cut off, so exact) and the rest (the other
    13 bits, exact in fp32; 0 where x is infinite, not inf - inf), two tf32 dots. The tensor cores
    keep 11 of the rest's significant bits, so each product is within 2^-20 of the exact one (for |x|
    above about 2^-113; below, the rest falls under tf32's subnormal step). Their fp32 accumulation
    rounds toward zero at each mma, so the two dots sum a step from zero (the rest first) and an
    fp32 add, rounding to nearest, puts the step into acc: added inside the mma, the cut bits grew
    with K to 2.2e-5 at K = 8192, against 2.6e-7 this way (docs/kernels.md)."""
    if DOT == "bf16":
        a, b = (x.to(tl.bfloat16), w.to(tl.bfloat16)) if X_LEFT else (w.to(tl.bfloat16), x.to(tl.bfloat16))
        acc = tl.dot(a, b, acc)
    elif DOT == "tf32x2":
        x = x.to(tl.float32)
        hi = (x.to(tl.int32, bitcast=True) & -8192).to(tl.float32, bitcast=True)
        lo = tl.where(hi == x, 0.0, x - hi)
        w = w.to(tl.float32)
        a, b = (lo, w) if X_LEFT else (w, lo)
        step = tl.dot(a, b, input_precision="tf32")
        a, b = (hi, w) if X_LEFT else (w, hi)
        acc += tl.dot(a, b, step, input_precision="tf32")
    else:  # tf32 (fp16 activations: exact) or ieee (fp32 on the CUDA cores)
        a, b = (x.to(tl.float32), w.to(tl.float32)) if X_LEFT else (w.to(tl.float32), x.to(tl.float32))
        acc = tl.dot(a, b, acc, input_precision=DOT)
    return acc
