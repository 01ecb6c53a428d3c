"""Compile an FP4 GEMV kernel for sm_90a on this machine (no GPU needed) and count the SASS
instructions in its main loop, per weight, and its global loads by width: the cheapest measure of
a decode change.

  python bench/sass_count.py --m 1 --kind mxfp4 --cfg 1,8,1,1          # tensor-core kernel
  python bench/sass_count.py --m 16 --kind nvfp4 --cfg 2,8,2,1
  python bench/sass_count.py --m 8 --kind mxfp4 --cfg 1,8,1,1 --tiled  # weights in layouts.fp4_tiles
  python bench/sass_count.py --m 8 --kind mxfp4 --cfg 1,4,1,1 --k 2880 --grouped  # the MoE decode's launch
  python bench/sass_count.py --m 1 --kind mxfp4 --cfg 4,1024,1,1,1     # M = 1 CUDA-core kernel
  python bench/sass_count.py --m 8 --kind mxfp4 --cfg 64,128,1,4,3 --act fp32  # fp4_gemv's M = 2..16 kernel
  python bench/sass_count.py --gemm 64,128,64,8,3 --kind mxfp4          # the general kernel (fp4_gemm)
  python bench/sass_count.py --gemm 128,128,64,8,3 --kind nvfp4 --tiled  # ... on layouts.fp4_tiles

--cfg is (rows, k_warps, chunks, split_k) as in fp4_gemv_mma.config, or (BLOCK_N, BLOCK_K, split_k,
num_warps, num_stages) as in fp4_gemv.config for its other kernels (M = 1, and M = 2..16 with a tl.dot).
--act is the activations' dtype: the tensor-core GEMV takes fp16 as hi and lo bf16 parts; the dots
of the others take what _launch.dot_precision gives on NVIDIA (tf32 for fp16, tf32x2 for fp32). --gemm (BLOCK_M, BLOCK_N,
BLOCK_K, num_warps, num_stages) compiles fp4_gemm's kernel as the prefill MoE runs it (gathered
rows, per-block experts, bf16 in, K = 2880) and also counts barriers and shared-memory traffic.
The tensor-core kernel's lane-layout guard (fp4_gemv_mma.check_lanes) runs on each compile.

Uses the local triton (its bundled ptxas and cuobjdump), which may differ from the GPU machine's:
compare variants with each other, and confirm on the device. The device image's triton (3.6) works
here too: unpack its wheel (`pip download --no-deps --only-binary=:all: triton==3.6.0`) and put it
first on PYTHONPATH. Pointer arguments are marked 16-byte aligned, and integers divisible by 16
where they are, as the JIT specializes them (--k sets K; W's row stride at K = 2880 is not).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from qcert.kernels.triton import fp4_gemm as fg
from qcert.kernels.triton import fp4_gemv as fv
from qcert.kernels.triton import fp4_gemv_mma as fvm
from qcert.kernels.triton._launch import dot_precision, row_align

sys.path.insert(0, str(Path(__file__).parent))
from bench_kernels import gemv_cfg  # noqa: E402

K = 8192
# activation dtype -> the dot an NVIDIA GPU gets ("meta": a GPU-like device without one)
ACT = {n: dot_precision(torch.empty(0, dtype=getattr(torch, t), device="meta"))
       for n, t in (("bf16", "bfloat16"), ("fp16", "float16"), ("fp32", "float32"))}


def compile_sm90(kernel, types: dict, const: dict, div16: list[str], warps: int, stages: int, maxnreg=None):
    """kernel: a _launch.Kernel (its compiled twin and helpers) or a plain triton.jit function."""
    fn = getattr(kernel, "_compiled", kernel)
    names = fn.arg_names
    const = {**const, **getattr(kernel, "_compiled_helpers", {})}
    sig = {n: ("constexpr" if n in const else types.get(n, "i32")) for n in names}
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in div16 if n in names}
    return triton.compile(ASTSource(fn=fn, signature=sig, constexprs=const, attrs=attrs),
                          target=GPUTarget("cuda", 90, 32),
                          options={"num_warps": warps, "num_stages": stages, **({"maxnreg": maxnreg} if maxnreg else {})})


def _cuobjdump(compiled, flag: str) -> str:
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        return subprocess.run([str(tool), flag, f.name], capture_output=True, text=True, check=True).stdout


def sass_of(compiled) -> str:
    return _cuobjdump(compiled, "-sass")


def resources(compiled) -> str:
    """"registers R, stack S bytes, shared D bytes" of the compiled kernel (ptxas' allocation; D the
    shared memory triton asks for at launch)."""
    m = re.search(r"REG:(\d+).*?STACK:(\d+)", _cuobjdump(compiled, "-res-usage"))
    regs = f"registers {m.group(1)}, stack {m.group(2)} bytes" if m else "registers ?"
    return f"{regs}, shared {compiled.metadata.shared} bytes"


def loops(sass: str) -> list[collections.Counter]:
    """Opcode counts of each backward-branch loop body."""
    ins = [(int(a, 16), t) for a, t in re.findall(r"/\*([0-9a-f]{4,})\*/\s+(.*?);", sass)]
    out = []
    for addr, text in ins:
        target = re.search(r"0x([0-9a-f]+)", text) if "BRA" in text else None
        if target and int(target.group(1), 16) < addr:
            lo = int(target.group(1), 16)
            ops = [t.split()[1] if t.startswith("@") else t.split()[0] for a, t in ins if lo <= a <= addr]
            out.append(collections.Counter(re.sub(r"\..*", "", op) for op in ops))
            out[-1].widths = collections.Counter(op for op in ops if op.startswith("LDG"))
    return out


def loads(counts: collections.Counter) -> str:
    """The loop's global loads by width ("LDG.E.128 4, LDG.E 8"): a row stride whose alignment the
    compiler cannot see turns one 16-byte load into four 4-byte ones."""
    return ", ".join(f"{op} {n}" for op, n in sorted(counts.widths.items()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--m", type=int, default=1)
    p.add_argument("--kind", choices=("mxfp4", "nvfp4"), default="mxfp4")
    p.add_argument("--cfg", type=gemv_cfg, default=(1, 8, 1, 1))
    p.add_argument("--tiled", action="store_true", help="weights in layouts.fp4_tiles")
    p.add_argument("--words", action="store_true", help="weights in layouts.fp4_words (the word map, plain rows)")
    p.add_argument("--max-regs", type=int, default=None,
                   help="tensor-core kernel's register cap (fp4_gemv_mma's max_regs: default with rows = 2: 96 tiled bf16, else 128; 0 none)")
    p.add_argument("--k", type=int, default=K, help="K (default 8192; 2880 is gpt-oss' MoE)")
    p.add_argument("--grouped", action="store_true", help="tensor-core kernel: the MoE decode's grouped launch")
    p.add_argument("--act", choices=tuple(ACT), default="bf16", help="the activations' dtype (module docstring)")
    p.add_argument("--dot", choices=(*ACT.values(), "ieee"),
                   help="the tl.dot's mode instead of the one the launch picks (fp4_gemv and the general kernel)")
    p.add_argument("--gemm", type=lambda t: tuple(int(v) for v in t.split(",")),
                   help="BLOCK_M,BLOCK_N,BLOCK_K,num_warps,num_stages: the general kernel instead")
    a = p.parse_args(argv)
    kind = fv.E8M0 if a.kind == "mxfp4" else fv.E4M3
    if a.gemm:
        return gemm_counts(a.kind, kind, *a.gemm, tiled=a.tiled, words=a.words, act=a.act, dot=a.dot)
    types = {"a_ptr": f"*{a.act}", "w_ptr": "*i32", "s_ptr": "*u8", "g_ptr": "*fp32", "bias_ptr": "*fp32", "c_ptr": "*bf16",
             "part_ptr": "*fp32", "count_ptr": "*i32"}
    common = dict(SCALE_KIND=kind, HAS_G=kind == fv.E4M3, HAS_BIAS=False)
    row_div16, aligns = _rows(a.k, kind, True)  # both GEMV kernels read W as int32 words
    div16 = ["a_ptr", "w_ptr", "s_ptr", "c_ptr", "N", "K", "words_per_split", "stride_am", "stride_cm", "stride_we",
             "stride_se"] + row_div16
    if len(a.cfg) == 4:  # the tensor-core kernel: A passed as bf16 or fp16 pairs
        if a.act == "fp32":
            p.error("--act fp32: the tensor-core GEMV takes bf16 or fp16 (fp32 goes to fp4_gemv's kernels)")
        rows, warps, chunks, split = a.cfg
        kernel, stages, types["a_ptr"] = fvm._fp4_gemv_mma, 1, "*i32"
        step = 128 * chunks * warps
        k_per_split = triton.cdiv(triton.cdiv(a.k, split), step) * step
        const = dict(common, TWO_TILES=a.m > 8, ROWS=rows, K_WARPS=warps, CHUNKS=chunks, GATHER=a.grouped,
                     GROUPED=a.grouped, TILED=a.tiled, MAPPED=a.tiled or a.words, ITERS=k_per_split // step,
                     EVEN_K=k_per_split * triton.cdiv(a.k, k_per_split) == a.k, LANE_K=a.k % 32 == 0,
                     A_ALIGN=row_align(torch.empty(2, a.k // 2, dtype=torch.int32)),
                     SPLIT=triton.cdiv(a.k, k_per_split), A_F16=a.act == "fp16", **aligns)
        types.update(a_rows_ptr="*i32", blk_e_ptr="*i32")
        weights = 128 * chunks * 2 * rows / 4  # per thread per loop iteration: 2 rows x 32 columns per chunk and tile
        cap = fvm.register_cap(rows, a.max_regs, a.tiled, a.act == "fp16")
    else:  # fp4_gemv's kernels: M = 1 on the CUDA cores, M = 2..16 with a tl.dot
        bn, bk, split, warps, stages = a.cfg
        kernel = fv.fp4_gemv1_kernel if a.m == 1 else fv.fp4_gemv_kernel
        k_per_split = triton.cdiv(triton.cdiv(a.k, split), bk) * bk
        const = dict(common, SPLITS=triton.cdiv(a.k, k_per_split), BLOCK_N=bn, BLOCK_K=bk, ITERS=k_per_split // bk,
                     stride_ak=1, EVEN_K=a.k % k_per_split == 0)
        if a.m > 1:
            const.update(DOT=a.dot or ACT[a.act], BLOCK_M=fv.MAX_M)
        weights = bn * bk / (32 * warps)
        cap = None
    compiled = compile_sm90(kernel, types, const, div16, warps, stages, cap)
    if kernel is fvm._fp4_gemv_mma:
        fvm.check_lanes(compiled, warps)  # the guard the GPU launch runs: raises if the lanes are wrong
    for counts in loops(sass_of(compiled)):
        total = sum(counts.values())
        top = ", ".join(f"{op} {n}" for op, n in counts.most_common(10))
        print(f"{a.kind} M={a.m} cfg {','.join(map(str, a.cfg))}: loop {total} instructions = {total / weights:.2f} per weight; {top}")
        print(f"{a.kind} M={a.m} cfg {','.join(map(str, a.cfg))}: loads {loads(counts)}")
    print(f"{a.kind} M={a.m} cfg {','.join(map(str, a.cfg))}: {resources(compiled)}")
    return 0


def _rows(k: int, kind: int, words: bool) -> tuple[list[str], dict]:
    """For contiguous weights at this K: the row strides the JIT marks divisible by 16 (it marks an
    integer argument only where it is; at K = 2880 W's rows are 1440 bytes but 360 words, the
    scales' 90 or 180 bytes) and the kernels' W_ALIGN / S_ALIGN (_launch.row_align)."""
    w_row, w_dtype = (k // 8, torch.int32) if words else (k // 2, torch.uint8)
    s_row = k // (32 if kind == fv.E8M0 else 16)
    div16 = [name for name, v in (("stride_wn", w_row), ("stride_sn", s_row)) if v % 16 == 0]
    return div16, dict(W_ALIGN=row_align(torch.empty(2, w_row, dtype=w_dtype)),
                       S_ALIGN=row_align(torch.empty(2, s_row, dtype=torch.uint8)))


def gemm_counts(name: str, kind: int, bm: int, bn: int, bk: int, warps: int, stages: int, tiled: bool = False,
                words: bool = False, act: str = "bf16", dot: str | None = None) -> int:
    """The prefill MoE's launch (gathered rows, per-block experts, K = 2880; `words`: W in
    layouts.fp4_words), or with `tiled` a dense linear on layouts.fp4_tiles (K = 8192); `act`: the
    activations' dtype (its dot: ACT)."""
    k = 8192 if tiled else 2880
    row_div16, aligns = _rows(k, kind, tiled or words)
    types = {"a_ptr": f"*{act}", "a_rows_ptr": "*i32", "w_ptr": "*i32" if tiled or words else "*u8", "s_ptr": "*u8",
             "g_ptr": "*fp32", "blk_e_ptr": "*i32", "bias_ptr": "*fp32", "c_ptr": "*fp32", "part_ptr": "*fp32",
             "count_ptr": "*i32"}
    const = dict(SCALE_KIND=kind, HAS_GATHER=not tiled, HAS_EXPERT=not tiled, HAS_G=kind == fv.E4M3, HAS_BIAS=False,
                 SPLITS=1, DOT=dot or ACT[act], BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, ITERS=k // bk, TILED=tiled,
                 WORDS=words, stride_ak=1, **aligns)
    div16 = ["a_ptr", "a_rows_ptr", "w_ptr", "s_ptr", "g_ptr", "blk_e_ptr", "c_ptr", "k_per_split", "stride_am",
             "stride_we", "stride_se", "stride_cm", "K", "N"] + row_div16
    compiled = compile_sm90(fg.fp4_gemm_kernel, types, const, div16, warps, stages)
    for counts in loops(sass_of(compiled)):
        total = sum(counts.values())
        mem = ", ".join(f"{op} {counts[op]}" for op in ("BAR", "STS", "LDS", "HGMMA")) + f"; {loads(counts)}"
        print(f"{name} fp4_gemm{' tiled' if tiled else ''}{' words' if words else ''} {bm}x{bn}x{bk}, {warps} warps: loop {total} instructions "
              f"= {total * 32 * warps / (bn * bk):.2f} per weight; {mem}")
    print(f"{name} fp4_gemm {bm}x{bn}x{bk}: {resources(compiled)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
