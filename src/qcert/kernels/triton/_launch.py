"""How triton kernels are launched here: compiled on a GPU, interpreted on CPU.

Each kernel is written once as a plain Python function and wrapped twice: `triton.jit` for GPU
tensors and triton's `InterpretedFunction` for CPU tensors. The wrapper is chosen per launch from
the tensors' device, so whether TRITON_INTERPRET was set when this module was imported does not
matter (triton itself reads that variable only at decoration time). The variable stays the opt-in:
the registry offers triton backends for CPU tensors only while TRITON_INTERPRET=1 (see
`available`), because interpreted kernels are slow and exist to check kernel logic in CI.

Kernels get their device helpers as constexpr arguments (see Kernel), and loop over K with
constexpr trip counts (older interpreters cannot take a runtime scalar as a range bound).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import torch
import triton
from triton.runtime import interpreter as _interp
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

from ..registry import OpContext, triton_interpret_enabled


class Kernel:
    """A kernel compiled for GPU tensors and interpreted for CPU tensors.

    `helpers` are plain functions the kernel receives as constexpr arguments of the same names
    (jitted for compiled launches, interpreted for interpreted ones); a (compiled, interpreted)
    pair gives each mode its own body. Triton's own tl.max/tl.zeros are jit functions bound at
    import time to one mode, so kernels use tl.full and a reduction helper pair instead.
    """

    def __init__(self, fn: Callable, **helpers: Any) -> None:
        self.fn = fn
        self.helpers = helpers
        # JITFunction directly: triton.jit would hand back an interpreted function when
        # TRITON_INTERPRET=1 happens to be set while this module is first imported.
        self._compiled = JITFunction(fn)
        self._compiled_helpers = {k: JITFunction(h[0] if isinstance(h, tuple) else h) for k, h in helpers.items()}
        self._interpreted: InterpretedFunction | None = None
        self._interpreted_helpers: dict[str, InterpretedFunction] = {}

    def on(self, device: torch.device) -> "_Launcher":
        if device.type == "cpu":
            if self._interpreted is None:
                self._interpreted = InterpretedFunction(self.fn)
                self._interpreted_helpers = {
                    k: _InterpretedHelper(h[1] if isinstance(h, tuple) else h) for k, h in self.helpers.items()
                }
            return _Launcher(self._interpreted, self._interpreted_helpers)
        return _Launcher(self._compiled, self._compiled_helpers)


class _InterpretedHelper(InterpretedFunction):
    """An interpreted device helper that undoes its patches of triton.language on return.

    triton's own InterpretedFunction.__call__ patches the language for the interpreter and never
    restores it; a compiled kernel launched later in the same process then fails to build."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        scope = _interp._patch_lang(self.fn)
        try:
            return self.rewrite()(*args, **kwargs)
        finally:
            scope.restore()


class _Launcher:
    def __init__(self, fn: Any, helpers: dict[str, Any]) -> None:
        self.fn, self.helpers = fn, helpers

    def __getitem__(self, grid: Any) -> Callable:
        launch = self.fn[grid]
        return lambda *args, **kw: launch(*args, **self.helpers, **kw)


def kernel(fn: Callable, **helpers: Any) -> Kernel:
    return Kernel(fn, **helpers)


def available(ctx: OpContext) -> "bool | str":
    """Triton backends: CUDA (sm80+) or ROCm GPUs, or CPU with TRITON_INTERPRET=1."""
    if ctx.device_type == "cpu":
        return True if triton_interpret_enabled() else "CPU tensors need TRITON_INTERPRET=1 (interpreted triton)"
    if ctx.device_type != "cuda":
        return f"device type {ctx.device_type!r} is not supported by triton"
    if not ctx.is_rocm and ctx.capability is not None and ctx.capability < (8, 0):
        return f"compute capability {ctx.capability} < (8, 0)"
    if ctx.dtype is not None and ctx.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        return f"activation dtype {ctx.dtype} is not bf16/fp16/fp32"
    return True


def device_facts(device: torch.device) -> tuple[tuple[int, int], int]:
    """(compute capability, SM count) of a GPU, asked once per device: kernels' host paths need them
    on every call."""
    return _device_facts(device.index if device.index is not None else torch.cuda.current_device())


@functools.lru_cache(maxsize=None)
def _device_facts(index: int) -> tuple[tuple[int, int], int]:
    props = torch.cuda.get_device_properties(index)
    return (props.major, props.minor), props.multi_processor_count


def row_align(t: torch.Tensor) -> int:
    """The largest power of two, up to 16 bytes' worth of elements, dividing every stride of t but
    the last: what a kernel may promise the compiler about its row starts, by rewriting a row stride
    as `stride // align * align` (the same value; tl.multiple_of on a scalar argument had no effect).
    The JIT marks an integer argument only when it is divisible by 16, so a row of 360 int32 words
    (K = 2880 in FP4) would otherwise be read 4 bytes at a time."""
    align = max(16 // t.element_size(), 1)
    while align > 1 and any(st % align for st in t.stride()[:-1]):
        align //= 2
    return align


def dot_precision(x: torch.Tensor) -> str:
    """How the kernels' tl.dot takes activations x (a constexpr): "bf16", bf16 operands on the tensor
    cores (bf16 activations; decoded fp4 * power-of-two or e4m3 scale, and e4m3, are exact in bf16);
    "tf32", fp32 operands on the tensor cores (fp16 activations on NVIDIA: fp16's 11 significant bits
    and the decoded weights fit tf32's, so the products are exact, as in the reference); "tf32x2",
    fp32 activations on NVIDIA as a tf32 part and the rest, two tf32 dots, each product within 2^-20
    of the exact one (_helpers.act_dot); "ieee", fp32 on the CUDA cores (ROCm's fp16 and fp32, and
    the interpreter, whose bf16 dot is wrong). Kernels take it through _helpers.act_dot."""
    if x.device.type == "cpu":
        return "ieee"
    if x.dtype == torch.bfloat16:
        return "bf16"
    if torch.version.hip is not None:
        return "ieee"
    return {torch.float16: "tf32", torch.float32: "tf32x2"}.get(x.dtype, "ieee")


def check_out(out: torch.Tensor | None, shape: tuple[int, ...], dtype: torch.dtype, device, what: str) -> torch.Tensor:
    """The caller's output buffer (every element gets written) or a fresh one."""
    if out is None:
        return torch.empty(shape, dtype=dtype, device=device)
    if tuple(out.shape) != tuple(shape) or out.dtype != dtype or out.device != torch.device(device):
        raise ValueError(
            f"{what}: out= must be {tuple(shape)} {dtype} on {device}, got {tuple(out.shape)} {out.dtype} on {out.device}"
        )
    if not out.is_contiguous():
        raise ValueError(f"{what}: out= must be contiguous")
    return out


def store_buffer(out: torch.Tensor) -> torch.Tensor:
    """Where a kernel stores out's values: out itself, except bf16 on CPU, where the interpreter's
    fp32 -> bf16 store truncates (the GPU's rounds to nearest even): an fp32 twin, rounded into
    out by round_into, so interpreted results carry the GPU's rounding."""
    if out.device.type == "cpu" and out.dtype == torch.bfloat16:
        return torch.empty(out.shape, dtype=torch.float32)
    return out


def round_into(out: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
    if buf is not out:
        out.copy_(buf)
    return out


_COUNTS: dict[tuple[torch.device, int], torch.Tensor] = {}


def split_counts(device: torch.device, blocks: int) -> torch.Tensor:
    """Zeroed int32 counters, one per output tile, for the kernels whose K splits' last program adds
    the partials (it counts the splits in, then resets its counter for the next launch). One set per
    device and stream, shared by those launches: on a stream they run one after another."""
    device = torch.device(device)
    gpu = device.type == "cuda"
    key = (device, torch.cuda.current_stream(device).cuda_stream if gpu else 0)
    have = _COUNTS.get(key)
    if have is not None and have.numel() >= blocks:
        return have
    fresh = torch.zeros(max(blocks, 1024), dtype=torch.int32, device=device)
    if not (gpu and torch.cuda.is_current_stream_capturing()):  # a graph's memory is not ours to keep
        _COUNTS[key] = fresh
    return fresh


def split_buffers(split: int, shape: tuple[int, ...], tiles: int, device, dummy: torch.Tensor):
    """(partials, counters) for a launch that splits K over `split` programs per output tile: each
    split's fp32 partial sums [split, *shape], added in split order by the tile's last program
    (_helpers.split_sum), and the tiles' counters (split_counts). Without a split, `dummy` for both
    (the kernel never touches them)."""
    if split <= 1:
        return dummy, dummy
    if split * math.prod(shape) >= 2**31:
        raise ValueError(f"K split {split} ways over an output {tuple(shape)}: the partials would pass the kernels' "
                         f"int32 offsets; split less")
    return torch.empty((split, *shape), dtype=torch.float32, device=device), split_counts(device, tiles)
