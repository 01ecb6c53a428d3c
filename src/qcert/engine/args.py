"""Engine arguments and their one normalization point.

Device strings are the subtle part (UPSTREAM.md section 5): code downstream compares the device TYPE
(`args.device == "cuda"` gates CUDA graphs), so `cuda:1` must become type `cuda` with index 1 here,
once, and nothing else may ever see the raw string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import torch

DEVICE_TYPES = ("cuda", "cpu", "xpu", "npu", "hpu", "musa", "mps")
# torch stores a device index in an int8: `cuda:128` silently wraps to -128, so cap it here.
MAX_DEVICE_INDEX = 127
ACCEPTED_DEVICE_FORMS = (
    f"None (auto-detect), a device type ({', '.join(DEVICE_TYPES)}) or 'type:index' "
    f"with index a decimal integer 0..{MAX_DEVICE_INDEX} without leading zeros"
)
# Lowercase ASCII only: `CUDA:0`, ` cuda`, `cuda:01` and unicode digits are all rejected.
_DEVICE_RE = re.compile(r"(?P<type>[a-z]+)(?::(?P<index>0|[1-9][0-9]*))?")

DTYPES = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}
FUSION_MODES = ("auto", "off", "force")


@dataclass(frozen=True)
class EngineArgs:
    device: str
    device_index: int | None = None
    dtype: torch.dtype = torch.bfloat16
    shared_expert_fusion: str = "auto"
    # Op name -> backend name. Read-only so one EngineArgs can be shared between loads.
    backends: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @property
    def torch_device(self) -> torch.device:
        if self.device_index is None:
            return torch.device(self.device)
        return torch.device(self.device, self.device_index)

    @property
    def use_cuda_graphs(self) -> bool:
        # Keys on the type only: `cuda` and `cuda:0` must decide the same way.
        return self.device == "cuda"


def parse_device(value: object) -> tuple[str, int | None]:
    """The (type, index) of a device string, checking its form only (no hardware is consulted)."""
    match = _DEVICE_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None or match["type"] not in DEVICE_TYPES:
        raise ValueError(f"device {value!r} is not a valid device; expected {ACCEPTED_DEVICE_FORMS}")
    index = None if match["index"] is None else int(match["index"])
    if index is not None and index > MAX_DEVICE_INDEX:
        raise ValueError(f"device {value!r} has index {index}; expected {ACCEPTED_DEVICE_FORMS}")
    return match["type"], index


def detect_device() -> str:
    # ROCm builds of torch report their GPUs through torch.cuda as well.
    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_available(device: str, index: int | None) -> None:
    if device == "cpu":
        return
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device 'cuda' was requested but torch sees no CUDA or ROCm device")
        count = torch.cuda.device_count()
        if index is not None and index >= count:
            raise ValueError(f"device 'cuda:{index}' was requested but torch sees {count} device(s)")
        return
    # Other types: ask torch only where it has a module that can tell.
    module = torch.backends.mps if device == "mps" else getattr(torch, device, None)
    is_available = getattr(module, "is_available", None)
    if callable(is_available) and not is_available():
        raise ValueError(f"device {device!r} was requested but torch reports it unavailable")


def normalize_device(value: object, *, check_available: bool = True) -> tuple[str, int | None]:
    """(type, index) for an engine's `device` argument; None auto-detects."""
    if value is None:
        return detect_device(), None
    device, index = parse_device(value)
    if check_available:
        _check_available(device, index)
    return device, index


def _normalize_dtype(value: object) -> torch.dtype:
    if isinstance(value, torch.dtype) and value in DTYPES.values():
        return value
    if isinstance(value, str) and value in DTYPES:
        return DTYPES[value]
    raise ValueError(f"dtype {value!r} is not supported; expected one of {', '.join(DTYPES)}")


def _normalize_backends(value: object) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"backends {value!r} must map op names to backend names (str -> str)")
    return MappingProxyType(dict(value))


def normalize_args(**kwargs: Any) -> EngineArgs:
    """EngineArgs from user keywords. `check_available=False` validates device forms without
    requiring the device to be present (how the conformance cases test `cuda:0` on a CPU box)."""
    known = {"device", "dtype", "shared_expert_fusion", "backends", "check_available"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"unknown engine argument(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    check = kwargs.get("check_available", True)
    if not isinstance(check, bool):
        raise ValueError(f"check_available {check!r} must be a bool")
    device, index = normalize_device(kwargs.get("device"), check_available=check)
    fusion = kwargs.get("shared_expert_fusion", "auto")
    if fusion not in FUSION_MODES:
        raise ValueError(f"shared_expert_fusion {fusion!r} is not one of {', '.join(FUSION_MODES)}")
    return EngineArgs(
        device=device,
        device_index=index,
        dtype=_normalize_dtype(kwargs.get("dtype", torch.bfloat16)),
        shared_expert_fusion=fusion,
        backends=_normalize_backends(kwargs.get("backends")),
    )
