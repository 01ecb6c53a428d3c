"""An aiter gate that checks for ROCm but not the GPU arch: on an MI250 (gfx90a, no MXFP4 kernels)
the aiter MXFP4 GEMM is offered and fails inside aiter (or runs the wrong code path) instead of
being refused with a reason naming the arch."""

from qcert.conformance.mutants import Mutant
from qcert.kernels import aiter as _aiter

_real_gate = _aiter._gate


def gate_any_arch(ctx, archs, what):
    return _real_gate(ctx, (ctx.gfx_arch,), what) if ctx.is_rocm else _real_gate(ctx, archs, what)


MUTANT = Mutant(
    id="kernels/aiter-gate-any-arch",
    description="the aiter backends' capability gate accepts any ROCm arch (MXFP4 needs gfx950 / gfx942)",
    upstream="class of bug: backend gates checking the vendor but not the architecture",
    kills=["kernels/aiter-gated-with-reason"],
    patches=[("qcert.kernels.aiter", "_gate", gate_any_arch)],
)
