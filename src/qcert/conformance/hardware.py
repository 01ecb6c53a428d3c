"""Which accelerators a run asked for and which this machine has (tri-state gating)."""

from __future__ import annotations

KINDS = ("cuda", "rocm")


def present(kind: str) -> bool:
    """Whether torch on this machine drives a device of `kind` (cuda, rocm or gpu = either)."""
    import torch  # late: listing cases and harness unit tests should not pay for it

    if kind == "gpu":
        return present("cuda") or present("rocm")
    if not torch.cuda.is_available():
        return False
    is_rocm = torch.version.hip is not None
    return is_rocm if kind == "rocm" else not is_rocm


def satisfies(needed: str, requested: set[str]) -> list[str]:
    """The requested kinds that would satisfy a case needing `needed` (empty: not requested)."""
    options = KINDS if needed == "gpu" else (needed,)
    return [k for k in options if k in requested]


def need_text(needed: str) -> str:
    options = KINDS if needed == "gpu" else (needed,)
    return " or ".join(f"--hardware {k}" for k in options)


def pytest_args(kinds) -> list[str]:
    """`--hardware KIND` for each requested kind, as the plugin takes them (run, selftest, certify)."""
    return [a for kind in kinds for a in ("--hardware", kind)]


def describe(kind: str | None) -> str:
    """What a case of this hardware kind runs on here, for the reports."""
    if kind is None:
        return "cpu"
    import torch

    if present(kind):
        return f"{'rocm' if torch.version.hip else 'cuda'}: {torch.cuda.get_device_name()}"
    return "absent"


def platform_info() -> dict[str, object]:
    import platform

    import torch

    info: dict[str, object] = {
        "python": platform.python_version(),
        "system": platform.platform(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "hip": torch.version.hip,
        "gpus": [],
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info
