"""Dispatch registry: explicit selection, priorities, env override, lazy backend loading."""

import uuid

import pytest
import torch

from qcert.kernels import registry as R

GPU = R.OpContext(device_type="cuda", capability=(9, 0), dtype=torch.bfloat16)
CPU = R.OpContext(device_type="cpu", dtype=torch.float32)


@pytest.fixture
def op(monkeypatch):
    """A fresh op with two backends: fast (priority 10, needs sm90+) and slow (priority 50)."""
    name = f"t_{uuid.uuid4().hex[:8]}"
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv(R.env_var(name), raising=False)
    R.define_op(name, lambda x: ("torch", x))
    R.register_backend(name, "slow", lambda x: ("slow", x), lambda ctx: True, priority=50)
    R.register_backend(
        name, "fast", lambda x: ("fast", x),
        lambda ctx: True if ctx.device_type == "cuda" and ctx.capability >= (9, 0) else "needs CUDA sm90+",
        priority=10,
    )
    return name


def test_priority_order_and_selection(op):
    assert [b.name for b in R.backends(op)] == ["fast", "slow", "torch"]
    assert R.select(op, GPU).name == "fast"
    ampere = R.OpContext(device_type="cuda", capability=(8, 0))
    assert R.select(op, ampere).name == "slow"
    assert R.available_backends(op, ampere) == ["slow", "torch"]


def test_cpu_picks_reference_unless_interpreting(op, monkeypatch):
    assert R.select(op, CPU).name == "torch"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert R.select(op, CPU).name == "slow"  # fast's own predicate still says no


def test_requested_unavailable_raises_naming_everything(op):
    with pytest.raises(R.BackendUnavailable) as ei:
        R.select(op, CPU, "fast")
    msg = str(ei.value)
    assert op in msg and "'fast'" in msg and "needs CUDA sm90+" in msg
    assert isinstance(ei.value, ValueError) and ei.value.reason == "needs CUDA sm90+"
    with pytest.raises(R.BackendUnavailable, match="not registered"):
        R.select(op, GPU, "nope")


def test_env_var_override_and_explicit_wins(op, monkeypatch):
    monkeypatch.setenv(R.env_var(op), "slow")
    assert R.env_var(op) == f"QCERT_BACKEND_{op.upper()}"
    assert R.select(op, GPU).name == "slow"
    assert R.select(op, GPU, "torch").name == "torch"
    monkeypatch.setenv(R.env_var(op), "fast")
    with pytest.raises(R.BackendUnavailable, match="fast"):
        R.select(op, CPU)  # env request is a request: no fallback


def test_declined_arguments_hand_over_only_when_unrequested(op):
    """A backend whose function declines these arguments (BackendUnavailable) passes them to the
    next preferred backend when nobody asked for it; asked for by name, its refusal is the error."""
    def picky(x):
        if x == "dynamic":
            raise R.BackendUnavailable(op, "picky", "dynamic scales are not my path")
        return ("picky", x)

    R.register_backend(op, "picky", picky, lambda ctx: True, priority=1)
    assert R.run(op, GPU, ("static",), {})[1] == ("picky", "static")
    backend, out = R.run(op, GPU, ("dynamic",), {})
    assert (backend.name, out) == ("fast", ("fast", "dynamic"))
    with pytest.raises(R.BackendUnavailable, match="dynamic scales are not my path"):
        R.run(op, GPU, ("dynamic",), {}, "picky")


def test_declined_arguments_reach_the_layouts_stand_in(op):
    """Weights already in a kernel layout: when the layout's only chosen backend declines, its
    on-request stand-in (never chosen first) computes instead; with no stand-in the error names why."""
    def picky(x):
        raise R.BackendUnavailable(op, "kern", "not my path")

    R.register_backend(op, "kern", picky, lambda ctx: True, priority=1, layout="tiled")
    with pytest.raises(R.BackendUnavailable, match="declined these arguments.*not my path"):
        R.run(op, GPU, ("x",), {}, layout="tiled")
    R.register_backend(op, "standin", lambda x: ("standin", x), lambda ctx: True, priority=90, layout="tiled",
                       on_request=True)
    assert R.select(op, GPU, layout="tiled").name == "kern"
    assert R.run(op, GPU, ("x",), {}, layout="tiled")[1] == ("standin", "x")


def test_layout_is_never_mixed(op):
    R.register_backend(op, "shuffled", lambda x: ("shuffled", x), lambda ctx: True, priority=1, layout="trtllm")
    assert R.select(op, GPU).name == "fast"
    assert R.select(op, GPU, layout="trtllm").name == "shuffled"
    with pytest.raises(R.BackendUnavailable, match="layout"):
        R.select(op, GPU, "shuffled")


def test_on_request_backends_and_any_layout(op):
    # A stand-in runs only when asked for by name, even where it is the most preferred available one.
    R.register_backend(op, "standin", lambda x: ("standin", x), lambda ctx: True, priority=0, layout="trtllm",
                       on_request=True)
    with pytest.raises(R.BackendUnavailable, match="no backend for layout 'trtllm'"):
        R.select(op, GPU, layout="trtllm")
    assert R.select(op, GPU, "standin", layout="trtllm").name == "standin"
    # ANY_LAYOUT: the backend that would run, whatever layout it consumes.
    R.register_backend(op, "shuffled", lambda x: ("shuffled", x), lambda ctx: True, priority=1, layout="trtllm")
    assert R.select(op, GPU, layout=R.ANY_LAYOUT).name == "shuffled"
    assert R.select(op, GPU).name == "fast"  # the op's own (plain) layout by default


def test_duplicates_and_unknown_op(op):
    with pytest.raises(ValueError, match="already"):
        R.register_backend(op, "slow", lambda x: x, lambda ctx: True)
    with pytest.raises(ValueError, match="already"):
        R.define_op(op, lambda x: x)
    with pytest.raises(KeyError, match="unknown kernel op"):
        R.select("no_such_op", CPU)


def test_false_predicate_gets_a_reason(op):
    R.register_backend(op, "quiet", lambda x: x, lambda ctx: False, priority=0)
    with pytest.raises(R.BackendUnavailable, match="no reason given"):
        R.select(op, GPU, "quiet")


def test_call_builds_context_from_first_tensor(op):
    x = torch.randn(3)
    tag, out = R.call(op, x)
    assert tag == "torch" and out is x
    with pytest.raises(R.BackendUnavailable):
        R.call(op, x, backend="fast")


def test_context_from_cpu_tensor():
    ctx = R.OpContext.from_tensor(torch.randn(2, 3, dtype=torch.bfloat16), m=2)
    assert (ctx.device_type, ctx.is_rocm, ctx.capability, ctx.gfx_arch) == ("cpu", False, None, None)
    assert ctx.dtype == torch.bfloat16 and ctx.shapes == {"m": 2}


def test_all_ops_defined_with_reference():
    names = set(R.ops())
    for want in ("mxfp4_linear", "nvfp4_linear", "fp8_linear", "bf16_linear", "moe", "mxfp4_moe",
                 "nvfp4_moe", "fp8_moe", "trtllm_fp4_w13_layout", "aiter_shuffle_weight", "aiter_shuffle_scale"):
        assert want in names
        assert R.backends(want)[-1].name == "torch"
    assert set(R.load_errors()) <= set(R.BACKEND_MODULES)


def test_backend_module_import_errors(monkeypatch):
    def raiser(exc):
        def imp(name):
            raise exc
        return imp

    monkeypatch.setattr(R, "_LOAD_ERRORS", {})
    monkeypatch.setattr(R.importlib, "import_module", raiser(ModuleNotFoundError("no flashinfer", name="flashinfer")))
    R._import_backend_module("qcert.kernels.flashinfer")
    assert "flashinfer" in R._LOAD_ERRORS["qcert.kernels.flashinfer"]
    # a bug in our own module (missing name of ours, or any other error) must surface
    monkeypatch.setattr(R.importlib, "import_module", raiser(ModuleNotFoundError("x", name="qcert.kernels.fp5")))
    with pytest.raises(ModuleNotFoundError):
        R._import_backend_module("qcert.kernels.flashinfer")
    monkeypatch.setattr(R.importlib, "import_module", raiser(NameError("typo")))
    with pytest.raises(NameError):
        R._import_backend_module("qcert.kernels.aiter")


def test_reference_fallbacks(op):
    """A load report's backends: an op with a kernel that ran the reference (alone or beside a kernel)
    or a layout's stand-in is a fallback; an op with no kernel at all is not."""
    R.register_backend(op, "standin", lambda x: x, lambda ctx: True, priority=R.REFERENCE_PRIORITY - 1,
                       layout="tiled", on_request=True)
    torch_only = f"t_{uuid.uuid4().hex[:8]}"
    R.define_op(torch_only, lambda x: x)
    assert R.has_kernel(op) and not R.has_kernel(torch_only)
    assert R.reference_fallbacks({op: "fast", torch_only: "torch"}) == {}
    assert R.reference_fallbacks({op: ["fast", "torch"]}) == {op: ["fast", "torch"]}
    assert R.reference_fallbacks({op: "standin"}) == {op: ["standin"]}
    assert R.reference_fallbacks({op: "slow"}) == {}


@pytest.mark.parametrize("op", ["mxfp4_linear", "nvfp4_linear"])
def test_wgmma_backend_runs_only_when_asked_and_only_on_sm90(op, monkeypatch):
    """triton_wgmma (the warpgroup-MMA GEMV, slower than triton_tiles on the H100) is never picked
    unasked; asked for, it runs on an sm_90 GPU with bf16 and refuses elsewhere, saying why."""
    pytest.importorskip("qcert.kernels.triton.ops")
    from qcert.kernels.triton import fp4_wgmma

    if not fp4_wgmma.available():
        pytest.skip("this triton has no Gluon")
    monkeypatch.delenv(R.env_var(op), raising=False)
    assert R.select(op, GPU, layout="fp4_tiles").name == "triton_tiles"
    assert R.select(op, GPU, "triton_wgmma", layout="fp4_tiles").name == "triton_wgmma"
    for ctx, why in ((R.OpContext(device_type="cuda", capability=(10, 0), dtype=torch.bfloat16), "(10, 0)"),
                     (R.OpContext(device_type="cuda", capability=(9, 0), dtype=torch.float16), "bf16"),
                     (R.OpContext(device_type="cuda", capability=(9, 0), dtype=torch.bfloat16, is_rocm=True), "ROCm")):
        with pytest.raises(R.BackendUnavailable, match="triton_wgmma") as e:
            R.select(op, ctx, "triton_wgmma", layout="fp4_tiles")
        assert why in str(e.value)
