"""One dispatch registry for every kernel op.

Each op has a torch reference (backend "torch", always available) and zero or more
backends registered by backend modules (triton, flashinfer, aiter). Selection is explicit:
a requested backend that cannot run raises BackendUnavailable, never a silent fallback.

Backend modules are imported lazily on first use. A backend module must import without its
third-party library installed; an ImportError naming that library is recorded as the reason
its backends are missing, any other exception (a bug in our code) propagates.
"""

from __future__ import annotations

import importlib
import itertools
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

__all__ = [
    "Backend",
    "BackendUnavailable",
    "OpContext",
    "available_backends",
    "backends",
    "call",
    "define_op",
    "env_var",
    "is_reference",
    "load_errors",
    "ops",
    "register_backend",
    "select",
    "triton_interpret_enabled",
]

# Imported on first use, in this order.
BACKEND_MODULES = ("qcert.kernels.triton.ops", "qcert.kernels.flashinfer", "qcert.kernels.aiter")
# An ImportError for one of these top-level packages means "library not installed", not a bug.
THIRD_PARTY = ("triton", "flashinfer", "aiter", "tvm_ffi", "flashinfer_python")

REFERENCE = "torch"
REFERENCE_PRIORITY = 1000  # the reference is the last resort when nothing faster is available


class BackendUnavailable(ValueError):
    """A requested backend cannot run this op here (or does not exist)."""

    def __init__(self, op: str, backend: str, reason: str):
        self.op, self.backend, self.reason = op, backend, reason
        super().__init__(f"op {op!r}: backend {backend!r} unavailable: {reason}")


@dataclass
class OpContext:
    """What a capability predicate may look at."""

    device_type: str = "cpu"
    is_rocm: bool = False
    capability: tuple[int, int] | None = None
    gfx_arch: str | None = None
    dtype: torch.dtype | None = None
    shapes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_tensor(cls, x: torch.Tensor, **shapes: Any) -> "OpContext":
        dev = x.device
        is_cuda = dev.type == "cuda"
        is_rocm = is_cuda and torch.version.hip is not None
        capability = gfx = None
        if is_cuda:
            capability = tuple(torch.cuda.get_device_capability(dev))
            if is_rocm:
                # gcnArchName looks like "gfx942:sramecc+:xnack-"; keep the arch.
                name = getattr(torch.cuda.get_device_properties(dev), "gcnArchName", "") or ""
                gfx = name.split(":")[0] or None
        return cls(dev.type, is_rocm, capability, gfx, x.dtype, dict(shapes))


@dataclass(frozen=True)
class Backend:
    op: str
    name: str
    fn: Callable
    available: Callable[[OpContext], "bool | str"]
    layout: str = "plain"
    priority: int = 100  # lower = preferred
    on_request: bool = False  # a stand-in: selected only when asked for by name

    def check(self, ctx: OpContext) -> str | None:
        """None when available, else the reason string."""
        ok = self.available(ctx)
        if ok is True:
            return None
        if ok is False or ok is None or ok == "":
            return "capability check failed (no reason given)"
        return str(ok)


@dataclass
class _Op:
    name: str
    layout: str
    backends: list[Backend] = field(default_factory=list)


_OPS: dict[str, _Op] = {}
_LOAD_ERRORS: dict[str, str] = {}
_loaded = False
_lock = threading.RLock()


def triton_interpret_enabled() -> bool:
    """Triton backends may run on CPU only when the interpreter is explicitly requested."""
    return os.environ.get("TRITON_INTERPRET", "") not in ("", "0")


def env_var(op: str) -> str:
    return f"QCERT_BACKEND_{op.upper()}"


def define_op(name: str, reference: Callable, layout: str = "plain") -> None:
    with _lock:
        if name in _OPS:
            raise ValueError(f"op {name!r} already defined")
        o = _Op(name, layout)
        o.backends.append(Backend(name, REFERENCE, reference, lambda ctx: True, layout, REFERENCE_PRIORITY))
        _OPS[name] = o


def register_backend(
    op: str,
    name: str,
    fn: Callable,
    available: Callable[[OpContext], "bool | str"],
    priority: int = 100,
    layout: str = "plain",
    on_request: bool = False,
) -> None:
    with _lock:
        o = _get(op, load=False)
        if name == REFERENCE or any(b.name == name for b in o.backends):
            raise ValueError(f"op {op!r}: backend {name!r} already registered")
        o.backends.append(Backend(op, name, fn, available, layout, priority, on_request))


def _import_backend_module(mod: str) -> None:
    try:
        importlib.import_module(mod)
    except ImportError as e:
        missing = (getattr(e, "name", None) or "").split(".")[0]
        if e.__class__ is ModuleNotFoundError and getattr(e, "name", None) == mod:
            _LOAD_ERRORS[mod] = "backend module not present"
        elif missing in THIRD_PARTY:
            _LOAD_ERRORS[mod] = f"third-party library {missing!r} not importable: {e}"
        else:
            raise


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        _loaded = True  # set first: backend modules import us (and ops) while loading
        try:
            importlib.import_module("qcert.kernels.ops")
            for mod in BACKEND_MODULES:
                _import_backend_module(mod)
        except BaseException:
            _loaded = False
            raise


def load_errors() -> dict[str, str]:
    """Backend modules that could not be imported, with why (for reports)."""
    _ensure_loaded()
    return dict(_LOAD_ERRORS)


def _get(op: str, load: bool = True) -> _Op:
    if load:
        _ensure_loaded()
    elif op not in _OPS:
        # a backend module registering before ops.py ran: define the ops now
        importlib.import_module("qcert.kernels.ops")
    try:
        return _OPS[op]
    except KeyError:
        raise KeyError(f"unknown kernel op {op!r}; defined: {sorted(_OPS)}") from None


def ops() -> list[str]:
    _ensure_loaded()
    return sorted(_OPS)


def backends(op: str) -> list[Backend]:
    """All backends of op, preferred first (priority, then registration order)."""
    o = _get(op)
    order = {id(b): i for i, b in enumerate(o.backends)}
    return sorted(o.backends, key=lambda b: (b.priority, order[id(b)]))


def available_backends(op: str, ctx: OpContext) -> list[str]:
    return [b.name for b in backends(op) if b.check(ctx) is None]


def is_reference(op: str, name: str) -> bool:
    """Whether `name` is op's torch reference or a stand-in for a kernel (the reference on the
    kernel's layout, registered one below the reference's priority): what runs where no kernel does."""
    return any(b.name == name and b.priority >= REFERENCE_PRIORITY - 1 for b in backends(op))


def has_kernel(op: str) -> bool:
    """op has a backend besides the torch reference (bf16_linear and fp8_moe run torch on every device)."""
    return any(not is_reference(op, b.name) for b in backends(op))


def reference_fallbacks(used: dict[str, str | list[str]]) -> dict[str, list[str]]:
    """Of a load report's `backends` (op -> the backend or backends that ran), the ops that have a
    kernel yet ran the reference or a stand-in: on a GPU, a silent fallback."""
    used = {op: [b] if isinstance(b, str) else list(b) for op, b in used.items()}
    return {op: names for op, names in used.items()
            if has_kernel(op) and any(is_reference(op, n) for n in names)}


ANY_LAYOUT = "*"  # `select(..., layout=ANY_LAYOUT)`: the backend that would run, whatever it consumes


def _preferred(o: "_Op", ctx: OpContext, want_layout: str, fits) -> list[Backend]:
    """The backends select() may choose unrequested, preferred first (never empty: raises)."""
    out = []
    for b in backends(o.name):
        if not fits(b) or b.on_request:
            continue
        if b.name != REFERENCE and ctx.device_type == "cpu" and not triton_interpret_enabled():
            continue
        if b.check(ctx) is None:
            out.append(b)
    if not out:
        raise BackendUnavailable(o.name, "<any>", f"no backend for layout {want_layout!r} on {ctx.device_type}")
    return out


def _fits(o: "_Op", layout: str | None):
    want_layout = layout or o.layout
    return want_layout, (lambda b: True) if want_layout == ANY_LAYOUT else (lambda b: b.layout == want_layout)


def select(op: str, ctx: OpContext, requested: str | None = None, *, layout: str | None = None) -> Backend:
    """Pick the backend for op.

    requested (or env var QCERT_BACKEND_<OP>) names one backend; if it cannot run here this
    raises BackendUnavailable. Unrequested: the preferred available backend whose layout is
    `layout` (default: the op's plain layout; ANY_LAYOUT for any), never an on-request stand-in.
    On CPU only the reference is chosen unless TRITON_INTERPRET=1 explicitly asks for
    interpreted triton kernels.
    """
    o = _get(op)
    want_layout, fits = _fits(o, layout)
    if requested is None:
        requested = os.environ.get(env_var(op)) or None
    if requested is not None:
        match = [b for b in o.backends if b.name == requested]
        if not match:
            known = [b.name for b in backends(op)]
            why = f"not registered (registered: {known})"
            if _LOAD_ERRORS:
                why += f"; backend modules not loaded: {_LOAD_ERRORS}"
            raise BackendUnavailable(op, requested, why)
        b = match[0]
        if not fits(b):
            raise BackendUnavailable(op, requested, f"consumes layout {b.layout!r}, caller has {want_layout!r}")
        reason = b.check(ctx)
        if reason is not None:
            raise BackendUnavailable(op, requested, reason)
        return b
    return _preferred(o, ctx, want_layout, fits)[0]


def run(op: str, ctx: OpContext, args: tuple, kwargs: dict, requested: str | None = None, *,
        layout: str | None = None) -> tuple[Backend, Any]:
    """Pick as select() does, then run: (the backend that ran, its result).

    A backend's function may still decline its arguments with BackendUnavailable (a scope its
    capability check cannot see: dynamic activation scales, a shape its library refuses). A
    requested backend's refusal is raised; an unrequested one hands over, before it has written
    anything, to the next preferred backend of the same layout, and last to that layout's
    on-request stand-ins (weights already in a kernel layout need a backend that reads it)."""
    if requested is None:
        requested = os.environ.get(env_var(op)) or None
    if requested is not None:
        chosen = select(op, ctx, requested, layout=layout)
        return chosen, chosen.fn(*args, **kwargs)
    o = _get(op)
    want_layout, fits = _fits(o, layout)
    stand_ins = (b for b in backends(op) if b.on_request and fits(b) and b.check(ctx) is None)  # lazy
    declined = []
    for b in itertools.chain(_preferred(o, ctx, want_layout, fits), stand_ins):
        try:
            return b, b.fn(*args, **kwargs)
        except BackendUnavailable as e:
            declined.append(str(e))
    raise BackendUnavailable(op, "<any>", "every available backend declined these arguments: " + "; ".join(declined))


def _first_tensor(args: tuple, kwargs: dict) -> torch.Tensor:
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            return a
    raise TypeError("call(): no tensor argument to build an OpContext from")


def call(op: str, *args: Any, backend: str | None = None, **kwargs: Any) -> Any:
    """Select with a context built from the first tensor argument, then run."""
    ctx = OpContext.from_tensor(_first_tensor(args, kwargs))
    return run(op, ctx, args, kwargs, backend)[1]
