"""Kernel ops: every available backend against the torch reference (DESIGN.md, Kernels).

For each op and each registered backend that can run here: fresh random inputs (never zeros;
odd shapes with partial tiles), the backend's output must match the reference within
kernels/tolerances.py; the output buffer is POISONED before the call (NaN, or a sentinel where NaN
is the expected answer) and handed in as `out=`, so an element the kernel never writes fails the
case; a backend that consumes a non-plain weight layout gets the weights through that layout's
transform op, so what it consumes is what the transform produces.

CPU runs interpret the triton kernels: the `interpreted_triton` fixture sets TRITON_INTERPRET=1
for the case only (the kernels pick the interpreter per launch from the tensors' device, so the
variable's value at import time does not matter). `--hardware cuda` runs the same checks on the
GPU with larger shapes, for triton and the vendor-library backends (flashinfer, aiter).
"""

from __future__ import annotations

import pytest
import torch

from qcert.conformance.case import case
from qcert.kernels import fp8 as f8
from qcert.kernels import mxfp4 as mx
from qcert.kernels import nvfp4 as nv
from qcert.kernels import registry
from qcert.kernels.layouts import fp4_tiles_fit
from qcert.kernels.tolerances import assert_close_rel

# backend name -> features a case lists for it
BACKENDS = ("triton", "flashinfer", "aiter")
# the fp4 linears also run on weights in the GEMV tile layout (layouts.fp4_tiles), the fp4 MoEs on
# experts under the word map (layouts.fp4_words); on Hopper the linears also on the warpgroup-MMA GEMV
# (triton_wgmma, the same tile layout)
EXTRA = {"mxfp4_linear": ("triton_tiles", "triton_wgmma"), "nvfp4_linear": ("triton_tiles", "triton_wgmma"),
         "mxfp4_moe": ("triton_words",), "nvfp4_moe": ("triton_words",)}
SENTINEL = -12345.0  # poison for outputs that legitimately hold NaN


def interpreter_breaks_compiled() -> bool:
    """triton < 3.9: an interpreted launch leaves triton.language patched, and compiled launches
    later in the same process fail to build (`get_uint8_ty`)."""
    import triton

    return tuple(int(p) for p in triton.__version__.split(".")[:2]) < (3, 9)


@pytest.fixture
def interpreted_triton(monkeypatch, request):
    """Opt CPU tensors into the interpreted triton backends for this case only.

    In a hardware run (--hardware) on a machine with a GPU, interpreted and compiled triton would
    share pytest's processes; with an affected triton the interpreted cases are skipped there, by
    name: CPU CI runs them, and the GPU cases check the same kernels compiled."""
    if request.config.getoption("qcert_hardware", None) and torch.cuda.is_available():
        try:
            affected = interpreter_breaks_compiled()
        except ImportError:
            affected = False
        if affected:
            pytest.skip("interpreted (CPU) triton case not run in a hardware run: triton < 3.9's interpreter breaks "
                        "compiled kernels later in the same process; CPU CI runs it")
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _gen(seed: int, device) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def _weights(g, *shape) -> torch.Tensor:
    """Gaussian weights with a per-row magnitude spread (never zeros)."""
    w = torch.randn(*shape, generator=g)
    spread = torch.exp(torch.randn(*shape[:-1], 1, generator=g))
    return w * spread


def _acts(g, m, k, dtype, device) -> torch.Tensor:
    return (torch.randn(m, k, generator=g) * 2.0 + 0.1).to(dtype).to(device)


# --- inputs per op: (args, kwargs, fmt) ----------------------------------------------------------


def mxfp4_linear_inputs(g, device, m, n, k, dtype, act_qdq, bias):
    wp, ws = mx.quantize_mxfp4(_weights(g, n, k))
    b = torch.randn(n, generator=g).to(dtype).to(device) if bias else None
    return (_acts(g, m, k, dtype, device), wp.to(device), ws.to(device)), {"bias": b, "act_qdq": act_qdq}, "mxfp4"


def nvfp4_linear_inputs(g, device, m, n, k, dtype, per_row_scale_2, input_scale, bias):
    w = _weights(g, n, k)
    wp, bs, s2 = nv.quantize_nvfp4(w)
    if per_row_scale_2:  # a per-row scale_2 (fused shards with their own global scales)
        s2 = (s2 * torch.exp2(torch.randint(-2, 3, (n,), generator=g).float())).to(torch.float32)
    x = _acts(g, m, k, dtype, device)
    kw = {"bias": torch.randn(n, generator=g).to(dtype).to(device) if bias else None}
    if input_scale:
        kw["input_scale"] = (x.float().abs().max() / (6 * 448) * 0.8).to(device)  # some saturate
    return (x, wp.to(device), bs.to(device), s2.to(device)), kw, "nvfp4"


def fp8_linear_inputs(g, device, m, n, k, dtype, scale_kind, input_scale, bias):
    w = _weights(g, n, k)
    if scale_kind == "tensor":
        wq, s = f8.quantize_fp8_per_tensor(w)
    else:
        wq, s = f8.quantize_fp8_per_channel(w)
        s = s.reshape(-1) if scale_kind == "channel-1d" else s
    x = _acts(g, m, k, dtype, device)
    kw = {"bias": torch.randn(n, generator=g).to(dtype).to(device) if bias else None}
    if input_scale:
        kw["input_scale"] = (x.float().abs().max() / 448 * 0.9).to(device)
    return (x, wq.to(device), s.to(device)), kw, "fp8"


def _routing(g, t, e, k, device):
    # distinct experts per token, some experts unused when e > t*k
    ids = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(t)]).to(torch.int32)
    w = torch.rand(t, k, generator=g) + 0.05
    return (w / w.sum(-1, keepdim=True)).to(device), ids.to(device)


def _w13_scale(dtype) -> float:
    """fp16's range ends at 65504: at full scale SiLU(gate) * up reached 4.6e5 (h = 1024), inf in fp16."""
    return 0.05 if dtype == torch.float16 else 1.0


def mxfp4_moe_inputs(g, device, t, h, i, e, k, dtype, act_qdq):
    w13p, w13s = mx.quantize_mxfp4(_weights(g, e, 2 * i, h) * _w13_scale(dtype))
    w2p, w2s = mx.quantize_mxfp4(_weights(g, e, h, i) * 0.2)
    tw, ids = _routing(g, t, e, k, device)
    x = _acts(g, t, h, dtype, device)
    args = (x, w13p.to(device), w13s.to(device), w2p.to(device), w2s.to(device), tw, ids)
    return args, {"act_qdq": act_qdq}, "mxfp4"


def _swiglu(h: torch.Tensor) -> torch.Tensor:
    i = h.shape[-1] // 2
    return torch.nn.functional.silu(h[..., :i]) * h[..., i:]


def nvfp4_moe_inputs(g, device, t, h, i, e, k, dtype, input_scale=False):
    def per_expert(ws):
        q = [nv.quantize_nvfp4(w) for w in ws]
        return (torch.stack([a[j] for a in q]).to(device) for j in range(3))

    w13, w13s, w13g = per_expert(_weights(g, e, 2 * i, h) * _w13_scale(dtype))
    w2, w2s, w2g = per_expert(_weights(g, e, h, i) * 0.2)
    tw, ids = _routing(g, t, e, k, device)
    x = _acts(g, t, h, dtype, device)
    kwargs = {}
    if input_scale:  # W4A4: one activation scale per GEMM, calibrated on these inputs for all experts
        inter = max(float(_swiglu(x.float() @ nv.dequantize_nvfp4(w13[j], w13s[j], w13g[j]).T).abs().max())
                    for j in range(e))
        kwargs = dict(w13_input_scale=(x.float().abs().max() / (448 * 6)).reshape(1),
                      w2_input_scale=torch.tensor([inter / (448 * 6)], device=device))
    return (x, w13, w13s, w13g, w2, w2s, w2g, tw, ids), kwargs, "nvfp4"


# (op, input builder, list of (id, params)) -- CPU shapes stay small (interpreted kernels)
CPU_CASES = {
    "mxfp4_linear": (mxfp4_linear_inputs, [
        ("w4a16-bias", dict(m=3, n=37, k=96, dtype=torch.bfloat16, act_qdq=False, bias=True)),
        ("w4a16-fp16-m1", dict(m=1, n=37, k=64, dtype=torch.float16, act_qdq=False, bias=False)),
        ("w4a16-fp32", dict(m=3, n=37, k=96, dtype=torch.float32, act_qdq=False, bias=True)),
        ("w4a4", dict(m=5, n=37, k=96, dtype=torch.bfloat16, act_qdq=True, bias=False)),
        ("w4a16-tileable", dict(m=3, n=48, k=256, dtype=torch.bfloat16, act_qdq=False, bias=True)),
        ("w4a4-tileable", dict(m=2, n=32, k=128, dtype=torch.bfloat16, act_qdq=True, bias=False)),
    ]),
    "nvfp4_linear": (nvfp4_linear_inputs, [
        ("w4a16-tileable", dict(m=3, n=32, k=256, dtype=torch.bfloat16, per_row_scale_2=True, input_scale=False,
                                bias=True)),
        ("w4a16", dict(m=3, n=37, k=80, dtype=torch.bfloat16, per_row_scale_2=False, input_scale=False, bias=True)),
        ("w4a16-rowscale", dict(m=2, n=37, k=48, dtype=torch.float16, per_row_scale_2=True, input_scale=False, bias=False)),
        ("w4a16-m1", dict(m=1, n=37, k=80, dtype=torch.bfloat16, per_row_scale_2=True, input_scale=False, bias=True)),
        ("w4a4", dict(m=5, n=37, k=80, dtype=torch.bfloat16, per_row_scale_2=False, input_scale=True, bias=False)),
    ]),
    "fp8_linear": (fp8_linear_inputs, [
        ("w8a16-tensor", dict(m=3, n=37, k=72, dtype=torch.bfloat16, scale_kind="tensor", input_scale=False, bias=True)),
        ("w8a16-channel", dict(m=5, n=37, k=40, dtype=torch.float16, scale_kind="channel-2d", input_scale=False, bias=False)),
        ("w8a8-channel", dict(m=5, n=37, k=72, dtype=torch.bfloat16, scale_kind="channel-1d", input_scale=True, bias=True)),
        ("w8a8-tensor", dict(m=2, n=37, k=40, dtype=torch.bfloat16, scale_kind="tensor", input_scale=True, bias=False)),
    ]),
    "mxfp4_moe": (mxfp4_moe_inputs, [
        ("w4a16", dict(t=5, h=64, i=32, e=5, k=2, dtype=torch.bfloat16, act_qdq=False)),
        ("w4a4", dict(t=3, h=64, i=32, e=4, k=2, dtype=torch.bfloat16, act_qdq=True)),
    ]),
    "nvfp4_moe": (nvfp4_moe_inputs, [
        ("w4a16", dict(t=5, h=48, i=32, e=5, k=2, dtype=torch.bfloat16)),
        ("w4a4", dict(t=4, h=48, i=32, e=4, k=2, dtype=torch.bfloat16, input_scale=True)),
    ]),
}

GPU_CASES = {
    "mxfp4_linear": (mxfp4_linear_inputs, [
        ("w4a16-m1", dict(m=1, n=4133, k=4096, dtype=torch.bfloat16, act_qdq=False, bias=False)),
        ("w4a16-m13", dict(m=13, n=1000, k=2880, dtype=torch.bfloat16, act_qdq=False, bias=True)),
        ("w4a16-m300", dict(m=300, n=777, k=1024, dtype=torch.bfloat16, act_qdq=False, bias=False)),
        ("w4a16-fp16", dict(m=7, n=515, k=512, dtype=torch.float16, act_qdq=False, bias=False)),
        ("w4a4", dict(m=33, n=515, k=1024, dtype=torch.bfloat16, act_qdq=True, bias=False)),
        # whole 16-row tiles and 128-column steps (also for triton_tiles): decode sizes and a prefill
        ("w4a16-m1-tileable", dict(m=1, n=4096, k=4096, dtype=torch.bfloat16, act_qdq=False, bias=False)),
        ("w4a16-m13-tileable", dict(m=13, n=1024, k=2816, dtype=torch.bfloat16, act_qdq=False, bias=True)),
        ("w4a4-m7-tileable", dict(m=7, n=512, k=1024, dtype=torch.bfloat16, act_qdq=True, bias=False)),
        ("w4a16-m300-tileable", dict(m=300, n=768, k=1024, dtype=torch.bfloat16, act_qdq=False, bias=False)),
        # few rows, long K: the tensor-core GEMV splits K over programs (fp4_gemv_mma.config)
        ("w4a16-m16-split-tileable", dict(m=16, n=512, k=4096, dtype=torch.bfloat16, act_qdq=False, bias=True)),
        # fp16 activations: the tensor-core GEMV's hi and lo bf16 parts, and the general kernel's tf32 dot
        ("w4a16-fp16-m13-tileable", dict(m=13, n=1024, k=2816, dtype=torch.float16, act_qdq=False, bias=True)),
        ("w4a16-fp16-m300-tileable", dict(m=300, n=768, k=1024, dtype=torch.float16, act_qdq=False, bias=False)),
        # fp32 activations: two tf32 dots in the general kernel (M = 300) and in fp4_gemv (M = 9)
        ("w4a16-fp32-m300", dict(m=300, n=777, k=1024, dtype=torch.float32, act_qdq=False, bias=True)),
        ("w4a16-fp32-m9", dict(m=9, n=515, k=1024, dtype=torch.float32, act_qdq=False, bias=False)),
    ]),
    "nvfp4_linear": (nvfp4_linear_inputs, [
        ("w4a16", dict(m=9, n=1001, k=2048, dtype=torch.bfloat16, per_row_scale_2=False, input_scale=False, bias=True)),
        ("w4a16-rowscale", dict(m=200, n=515, k=1040, dtype=torch.bfloat16, per_row_scale_2=True, input_scale=False, bias=False)),
        ("w4a4", dict(m=17, n=515, k=1024, dtype=torch.bfloat16, per_row_scale_2=False, input_scale=True, bias=False)),
        ("w4a16-m16-tileable", dict(m=16, n=2048, k=2048, dtype=torch.bfloat16, per_row_scale_2=True,
                                    input_scale=False, bias=True)),
        ("w4a16-m4-tileable", dict(m=4, n=1024, k=1152, dtype=torch.bfloat16, per_row_scale_2=False,
                                   input_scale=False, bias=False)),
        ("w4a4-m5-tileable", dict(m=5, n=512, k=1024, dtype=torch.bfloat16, per_row_scale_2=False,
                                  input_scale=True, bias=False)),
        ("w4a16-m64-tileable", dict(m=64, n=512, k=512, dtype=torch.bfloat16, per_row_scale_2=True,
                                    input_scale=False, bias=False)),
        ("w4a16-m12-split-tileable", dict(m=12, n=256, k=4096, dtype=torch.bfloat16, per_row_scale_2=True,
                                          input_scale=False, bias=True)),
        ("w4a16-fp16-m4-tileable", dict(m=4, n=1024, k=1152, dtype=torch.float16, per_row_scale_2=False,
                                        input_scale=False, bias=True)),
    ]),
    "fp8_linear": (fp8_linear_inputs, [
        ("w8a16-tensor", dict(m=5, n=1001, k=2048, dtype=torch.bfloat16, scale_kind="tensor", input_scale=False, bias=True)),
        ("w8a16-channel-m300", dict(m=300, n=777, k=1024, dtype=torch.bfloat16, scale_kind="channel-2d", input_scale=False, bias=False)),
        ("w8a8-channel", dict(m=300, n=1001, k=2048, dtype=torch.bfloat16, scale_kind="channel-1d", input_scale=True, bias=True)),
        ("w8a8-tensor", dict(m=16, n=1024, k=4096, dtype=torch.bfloat16, scale_kind="tensor", input_scale=True, bias=False)),
        # prefill-sized: on Hopper the persistent TMA kernel (K not a multiple of its 128-wide tiles)
        ("w8a8-tensor-m257", dict(m=257, n=515, k=1040, dtype=torch.bfloat16, scale_kind="tensor", input_scale=True, bias=True)),
        ("w8a16-fp16-m300", dict(m=300, n=777, k=1024, dtype=torch.float16, scale_kind="channel-2d", input_scale=False, bias=True)),
        ("w8a16-fp32-m300", dict(m=300, n=777, k=1024, dtype=torch.float32, scale_kind="tensor", input_scale=False, bias=False)),
    ]),
    "mxfp4_moe": (mxfp4_moe_inputs, [
        ("w4a16", dict(t=37, h=1024, i=512, e=16, k=4, dtype=torch.bfloat16, act_qdq=False)),
        ("w4a16-t300", dict(t=300, h=512, i=256, e=8, k=2, dtype=torch.bfloat16, act_qdq=False)),
        ("w4a4", dict(t=20, h=512, i=256, e=8, k=2, dtype=torch.bfloat16, act_qdq=True)),
        # T * k <= 64: decode-sized (triton: the tensor-core GEMV's grouped mode; w4a4 above is too)
        ("w4a16-decode", dict(t=5, h=1024, i=512, e=16, k=4, dtype=torch.bfloat16, act_qdq=False)),
        ("w4a16-fp16-decode", dict(t=5, h=1024, i=512, e=16, k=4, dtype=torch.float16, act_qdq=False)),
    ]),
    "nvfp4_moe": (nvfp4_moe_inputs, [
        ("w4a16", dict(t=37, h=1024, i=512, e=16, k=4, dtype=torch.bfloat16)),
        ("w4a4", dict(t=37, h=1024, i=512, e=16, k=4, dtype=torch.bfloat16, input_scale=True)),
        # T * k <= 64: decode-sized (triton: the tensor-core GEMV's grouped mode)
        ("w4a16-decode", dict(t=5, h=1024, i=512, e=16, k=4, dtype=torch.bfloat16)),
        ("w4a4-decode", dict(t=5, h=1024, i=512, e=16, k=4, dtype=torch.bfloat16, input_scale=True)),
        ("w4a16-fp16-decode", dict(t=5, h=1024, i=512, e=16, k=4, dtype=torch.float16)),
        # T * k = 148: the general grouped kernel, its tf32 dot for fp16
        ("w4a16-fp16-prefill", dict(t=37, h=1024, i=512, e=16, k=4, dtype=torch.float16)),
        ("w4a16-fp32-prefill", dict(t=37, h=1024, i=512, e=16, k=4, dtype=torch.float32)),
    ]),
}


# --- running one backend ---------------------------------------------------------------------------


def layout_args(op: str, layout: str, args: tuple) -> tuple:
    """Weights transformed into the layout a backend consumes, through the layout ops."""
    if layout == "plain":
        return args
    if layout == "aiter_shuffle" and op in ("mxfp4_linear", "mxfp4_moe"):
        if op == "mxfp4_linear":
            x, w, s = args
            return (x, registry.call("aiter_shuffle_weight", w), registry.call("aiter_shuffle_scale", s))
        x, w13, s13, w2, s2, *rest = args
        return (x, registry.call("aiter_shuffle_weight", w13), registry.call("aiter_shuffle_scale", s13),
                registry.call("aiter_shuffle_weight", w2), registry.call("aiter_shuffle_scale", s2), *rest)
    if layout == "fp4_tiles" and op in ("mxfp4_linear", "nvfp4_linear"):
        x, w, s, *rest = args
        if not fp4_tiles_fit(w.shape[0], x.shape[-1]):
            pytest.skip(f"{op}: weight {tuple(w.shape)} does not fit the fp4_tiles layout (N % 16, K % 128)")
        return (x, *registry.call("fp4_tiles", w, s), *rest)
    if layout == "fp4_words" and op in ("mxfp4_moe", "nvfp4_moe"):
        x, *rest = args
        w = (0, 2) if op == "mxfp4_moe" else (0, 3)  # (w13, its scales) and (w2, its scales) in rest
        for j in w:
            rest[j], rest[j + 1] = registry.call("fp4_words", rest[j], rest[j + 1])
        return (x, *rest)
    if layout == "trtllm_fp4" and op == "nvfp4_moe":
        x, w13, s13, g13, w2, s2, g2, *rest = args
        w13, s13 = registry.call("trtllm_fp4_w13_layout", w13, s13)
        w2, s2 = registry.call("trtllm_fp4_w2_layout", w2, s2)
        return (x, w13, s13, g13, w2, s2, g2, *rest)
    raise AssertionError(f"case has no transform for op {op!r} layout {layout!r}: add one")


def _backend_or_skip(op: str, name: str, x: torch.Tensor) -> registry.Backend:
    ctx = registry.OpContext.from_tensor(x)
    match = [b for b in registry.backends(op) if b.name == name]
    if not match:
        pytest.skip(f"{op}: backend {name!r} not registered here ({registry.load_errors()})")
    reason = match[0].check(ctx)
    if reason is not None:
        pytest.skip(f"{op}: backend {name!r} unavailable: {reason}")
    return match[0]


def _run_checked(op, backend, args, kwargs, fmt, poison=float("nan")):
    ref = registry.select(op, registry.OpContext.from_tensor(args[0]), "torch").fn(*args, **kwargs)
    out = torch.full_like(ref, poison)
    try:
        got = backend.fn(*layout_args(op, backend.layout, args), **kwargs, out=out)
    except registry.BackendUnavailable as e:  # this argument combination is outside the backend's scope
        pytest.skip(str(e))
    assert got is out or got.data_ptr() == out.data_ptr(), f"{op}/{backend.name}: result is not the out= buffer"
    return out, ref


def check_matches_reference(op: str, name: str, params: dict, device: str, seed: int) -> None:
    builder = (CPU_CASES if device == "cpu" else GPU_CASES)[op][0]
    args, kwargs, fmt = builder(_gen(seed, device), device, **params)
    backend = _backend_or_skip(op, name, args[0])
    out, ref = _run_checked(op, backend, args, kwargs, fmt)
    unwritten = int(torch.isnan(out).sum())
    assert unwritten == 0, f"{op}/{name}: {unwritten} of {out.numel()} output elements never written (still NaN)"
    assert_close_rel(out.float(), ref.float(), fmt, what=f"{op}/{name} {params}")


def _params(table: dict, op: str) -> list:
    return [pytest.param(name, p, id=f"{name}-{pid}") for name in BACKENDS + EXTRA.get(op, ())
            for pid, p in table[op][1]]


# --- CPU (interpreted triton) ---------------------------------------------------------------------


@case("kernels/mxfp4-linear-matches-reference",
      "every available mxfp4_linear backend matches the torch reference (W4A16 and W4A4) and writes every output",
      features=["kernels", "mxfp4", "triton"])
@pytest.mark.parametrize("name,params", _params(CPU_CASES, "mxfp4_linear"))
def test_mxfp4_linear(interpreted_triton, name, params):
    check_matches_reference("mxfp4_linear", name, params, "cpu", 1)


@case("kernels/nvfp4-linear-matches-reference",
      "every available nvfp4_linear backend matches the torch reference (scalar/per-row scale_2, W4A4) and writes every output",
      features=["kernels", "nvfp4", "triton"])
@pytest.mark.parametrize("name,params", _params(CPU_CASES, "nvfp4_linear"))
def test_nvfp4_linear(interpreted_triton, name, params):
    check_matches_reference("nvfp4_linear", name, params, "cpu", 2)


@case("kernels/fp8-linear-matches-reference",
      "every available fp8_linear backend matches the torch reference (per-tensor/per-channel, W8A16/W8A8) and writes every output",
      features=["kernels", "fp8", "triton"])
@pytest.mark.parametrize("name,params", _params(CPU_CASES, "fp8_linear"))
def test_fp8_linear(interpreted_triton, name, params):
    check_matches_reference("fp8_linear", name, params, "cpu", 3)


@case("kernels/mxfp4-moe-matches-reference",
      "every available mxfp4_moe backend matches the torch reference (routing with unused experts, W4A16 and W4A4)",
      features=["kernels", "mxfp4", "triton"])
@pytest.mark.parametrize("name,params", _params(CPU_CASES, "mxfp4_moe"))
def test_mxfp4_moe(interpreted_triton, name, params):
    check_matches_reference("mxfp4_moe", name, params, "cpu", 4)


@case("kernels/nvfp4-moe-matches-reference",
      "every available nvfp4_moe backend matches the torch reference (per-expert scale_2, unused experts, W4A16 and W4A4)",
      features=["kernels", "nvfp4", "triton"])
@pytest.mark.parametrize("name,params", _params(CPU_CASES, "nvfp4_moe"))
def test_nvfp4_moe(interpreted_triton, name, params):
    check_matches_reference("nvfp4_moe", name, params, "cpu", 5)


# NaN block-scale bytes: e8m0 0xFF (MXFP4) and e4m3fn S.1111.111 (NVFP4). A block whose scale is
# NaN makes NaN exactly the outputs that use it; a decode that saturates it to a finite scale hides
# a corrupt checkpoint.
NAN_SCALE = {"mxfp4": 0xFF, "nvfp4": 0x7F}


def _nan_scale_inputs(op: str, device, name: str):
    """(args with NaN block scales, kwargs, fmt, where): linears get NaN in row 5's second block and
    the last (tail) row's third, so output columns 5 and N - 1 are NaN; MoEs in w2 of token 0's first
    expert (row 5: column 5 of its tokens) and in w13 of another expert (a gate row: every column of
    its tokens, through GEMM 2). `where`: (rows, columns) the reference must show NaN at."""
    g = _gen(6, device)
    bf16 = torch.bfloat16
    tiles, m = name in ("triton_tiles", "triton_wgmma"), 12 if name == "triton_wgmma" else 3  # wgmma: 8 < M <= 16
    if op in ("mxfp4_linear", "nvfp4_linear"):
        n, k = (48, 128) if tiles else (37, 96)
        if op == "mxfp4_linear":
            args, kwargs, fmt = mxfp4_linear_inputs(g, device, m=m, n=n, k=k, dtype=bf16, act_qdq=False, bias=False)
        else:
            args, kwargs, fmt = nvfp4_linear_inputs(g, device, m=m, n=n, k=k, dtype=bf16, per_row_scale_2=False,
                                                    input_scale=False, bias=False)
        places, where = {2: [(5, 1), (n - 1, 2)]}, [(slice(None), 5), (slice(None), n - 1)]
    else:
        # s13, s2: the positions of w13's and w2's block scales in the op's arguments
        if op == "mxfp4_moe":
            args, kwargs, fmt = mxfp4_moe_inputs(g, device, t=6, h=64, i=32, e=4, k=2, dtype=bf16, act_qdq=False)
            s13, s2 = 2, 4
        else:
            args, kwargs, fmt = nvfp4_moe_inputs(g, device, t=6, h=48, i=32, e=4, k=2, dtype=bf16)
            s13, s2 = 2, 5
        ids = args[-1].cpu()
        e_a = int(ids[0, 0])
        e_b = next(int(e) for e in ids.flatten().tolist() if e != e_a)
        places = {s2: [(e_a, 5, 0)], s13: [(e_b, 3, 1)]}
        where = [((ids == e_a).any(1), 5), ((ids == e_b).any(1), slice(None))]  # rows: the tokens routed there
    args = list(args)
    for j, spots in places.items():
        s = args[j].clone()
        for spot in spots:
            s.view(torch.uint8)[spot] = NAN_SCALE[fmt]
        args[j] = s
    return tuple(args), kwargs, fmt, where


def check_nan_scale(op: str, name: str, device: str) -> None:
    args, kwargs, fmt, where = _nan_scale_inputs(op, device, name)
    backend = _backend_or_skip(op, name, args[0])
    out, ref = _run_checked(op, backend, args, kwargs, fmt, poison=SENTINEL)
    assert not bool((out == SENTINEL).any()), f"{op}/{name}: output elements never written"
    ref_nan, out_nan = torch.isnan(ref).cpu(), torch.isnan(out).cpu()
    assert all(ref_nan[rows, cols].all() for rows, cols in where) and not ref_nan.all(), (
        "reference lost the NaN scales, or has nothing finite left (test premise)")
    assert torch.equal(out_nan, ref_nan), (
        f"{op}/{name}: NaN pattern differs: out NaN at {out_nan.nonzero().tolist()[:8]}, "
        f"reference at {ref_nan.nonzero().tolist()[:8]}")
    keep = ~ref_nan.to(out.device)
    assert_close_rel(out[keep].float(), ref[keep].float(), fmt, what=f"{op}/{name} finite outputs")


@case("kernels/mxfp4-nan-scale-propagates",
      "an e8m0 0xFF (NaN) block scale makes exactly the outputs that use it NaN, in every backend",
      features=["kernels", "mxfp4", "triton"])
@pytest.mark.parametrize("name", BACKENDS + EXTRA["mxfp4_linear"])
def test_mxfp4_nan_scale(interpreted_triton, name):
    check_nan_scale("mxfp4_linear", name, "cpu")


@case("kernels/nvfp4-nan-scale-propagates",
      "an e4m3 NaN block scale (S.1111.111) makes exactly the outputs that use it NaN, in every nvfp4_linear backend",
      features=["kernels", "nvfp4", "triton"])
@pytest.mark.parametrize("name", BACKENDS + EXTRA["nvfp4_linear"])
def test_nvfp4_nan_scale(interpreted_triton, name):
    check_nan_scale("nvfp4_linear", name, "cpu")


def _moe_nan_params():
    return [pytest.param(op, name, id=f"{op}-{name}") for op in ("mxfp4_moe", "nvfp4_moe")
            for name in BACKENDS + EXTRA[op]]


@case("kernels/moe-nan-scale-propagates",
      "in the fp4 MoEs a NaN block scale of one expert makes NaN exactly the outputs of the tokens routed to it "
      "(one column through w2, every column through w13)",
      features=["kernels", "mxfp4", "nvfp4", "triton"])
@pytest.mark.parametrize("op,name", _moe_nan_params())
def test_moe_nan_scale(interpreted_triton, op, name):
    check_nan_scale(op, name, "cpu")


@case("kernels/triton-needs-interpret-on-cpu",
      "on CPU the triton backends are offered only with TRITON_INTERPRET=1; a request without it names the variable",
      features=["kernels", "triton"])
def test_triton_gate(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if "qcert.kernels.triton.ops" in registry.load_errors():
        pytest.skip(f"triton not importable: {registry.load_errors()['qcert.kernels.triton.ops']}")
    x = torch.randn(2, 64)
    ctx = registry.OpContext.from_tensor(x)
    assert registry.select("mxfp4_linear", ctx).name == "torch"
    with pytest.raises(registry.BackendUnavailable, match="TRITON_INTERPRET"):
        registry.select("mxfp4_linear", ctx, "triton")


# --- GPU ---------------------------------------------------------------------------------------------


def _gpu_params(op: str) -> list:
    return _params(GPU_CASES, op)


@case("kernels/gpu-linear-matches-reference",
      "on the GPU every available linear backend (mxfp4, nvfp4, fp8) matches the reference and writes every output",
      features=["kernels", "mxfp4", "nvfp4", "fp8", "triton", "flashinfer", "aiter"], hardware="gpu")
@pytest.mark.parametrize("op,name,params", [
    pytest.param(op, *p.values, id=f"{op}-{p.id}") for op in ("mxfp4_linear", "nvfp4_linear", "fp8_linear")
    for p in _gpu_params(op)
])
def test_gpu_linear(op, name, params):
    check_matches_reference(op, name, params, "cuda", 11)


@case("kernels/gpu-moe-matches-reference",
      "on the GPU every available fp4 MoE backend matches the reference, consuming its layout transform's output",
      features=["kernels", "mxfp4", "nvfp4", "triton", "flashinfer", "aiter"], hardware="gpu")
@pytest.mark.parametrize("op,name,params", [
    pytest.param(op, *p.values, id=f"{op}-{p.id}") for op in ("mxfp4_moe", "nvfp4_moe") for p in _gpu_params(op)
])
def test_gpu_moe(op, name, params):
    check_matches_reference(op, name, params, "cuda", 12)


@case("kernels/gpu-mxfp4-nan-scale-propagates",
      "on the GPU an e8m0 NaN block scale makes exactly the outputs that use it NaN, in every backend",
      features=["kernels", "mxfp4", "triton", "aiter"], hardware="gpu")
@pytest.mark.parametrize("name", BACKENDS + EXTRA["mxfp4_linear"])
def test_gpu_mxfp4_nan_scale(name):
    check_nan_scale("mxfp4_linear", name, "cuda")


@case("kernels/gpu-nvfp4-nan-scale-propagates",
      "on the GPU an e4m3 NaN block scale makes exactly the outputs that use it NaN, in every nvfp4_linear backend",
      features=["kernels", "nvfp4", "triton", "flashinfer"], hardware="gpu")
@pytest.mark.parametrize("name", BACKENDS + EXTRA["nvfp4_linear"])
def test_gpu_nvfp4_nan_scale(name):
    check_nan_scale("nvfp4_linear", name, "cuda")


@case("kernels/gpu-moe-nan-scale-propagates",
      "on the GPU a NaN block scale of one expert makes NaN exactly the outputs of the tokens routed to it",
      features=["kernels", "mxfp4", "nvfp4", "triton", "flashinfer", "aiter"], hardware="gpu")
@pytest.mark.parametrize("op,name", _moe_nan_params())
def test_gpu_moe_nan_scale(op, name):
    check_nan_scale(op, name, "cuda")


# --- ROCm (aiter) ----------------------------------------------------------------------------------

ROCM_CASES = [  # (op, params): the aiter backends' scope is W4A4 (activations MXFP4-quantized)
    ("mxfp4_linear", dict(m=13, n=1000, k=2880, dtype=torch.bfloat16, act_qdq=True, bias=True)),
    ("mxfp4_linear", dict(m=300, n=768, k=1024, dtype=torch.bfloat16, act_qdq=True, bias=False)),
    ("mxfp4_moe", dict(t=37, h=1024, i=512, e=16, k=4, dtype=torch.bfloat16, act_qdq=True)),
]


@case("kernels/rocm-aiter-matches-reference",
      "on a ROCm GPU the aiter MXFP4 GEMM and MoE consume the aiter_shuffle layout and match the reference; "
      "an unavailable aiter backend fails the case (never a skip)",
      features=["kernels", "mxfp4", "aiter"], hardware="rocm")
@pytest.mark.parametrize("op,params", [pytest.param(op, p, id=f"{op}-{i}") for i, (op, p) in enumerate(ROCM_CASES)])
def test_rocm_aiter(op, params):
    builder = GPU_CASES[op][0]
    args, kwargs, fmt = builder(_gen(13, "cuda"), "cuda", **params)
    match = [b for b in registry.backends(op) if b.name == "aiter"]
    assert match, f"{op}: aiter backend not registered ({registry.load_errors()})"
    reason = match[0].check(registry.OpContext.from_tensor(args[0]))
    assert reason is None, f"{op}: aiter backend unavailable on this ROCm machine: {reason}"
    out, ref = _run_checked(op, match[0], args, kwargs, fmt)
    assert int(torch.isnan(out).sum()) == 0, f"{op}/aiter: output elements never written"
    assert_close_rel(out.float(), ref.float(), fmt, what=f"{op}/aiter {params}")


@case("kernels/aiter-gated-with-reason",
      "the aiter backends are registered without aiter installed and refuse, with a reason naming what is missing, "
      "CPU tensors, CUDA (non-ROCm) devices, ROCm archs without MXFP4 kernels, and a missing aiter",
      features=["kernels", "aiter"])
def test_aiter_gate(monkeypatch):
    import importlib.util

    for op in ("mxfp4_linear", "mxfp4_moe"):
        match = [b for b in registry.backends(op) if b.name == "aiter"]
        assert match, f"{op}: aiter backend not registered ({registry.load_errors()})"
        b = match[0]
        assert b.layout == "aiter_shuffle"
        assert "ROCm" in b.check(registry.OpContext.from_tensor(torch.randn(2, 64, dtype=torch.bfloat16)))
        nvidia = registry.OpContext("cuda", False, (9, 0), None, torch.bfloat16)
        assert "ROCm" in b.check(nvidia)
        old = registry.OpContext("cuda", True, (9, 0), "gfx90a", torch.bfloat16)
        assert "gfx90a" in b.check(old) and "gfx950" in b.check(old)
        mi355 = registry.OpContext("cuda", True, (9, 5), "gfx950", torch.bfloat16)
        real_find_spec = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aiter" else real_find_spec(name, *a))
        assert "aiter is not installed" in b.check(mi355)
        monkeypatch.undo()
        # a plain-layout request for the aiter backend is refused by name, not run on the wrong bytes
        with pytest.raises(registry.BackendUnavailable, match="aiter_shuffle"):
            registry.select(op, mi355, "aiter")
