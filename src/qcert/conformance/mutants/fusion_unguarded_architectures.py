"""Upstream indexes `config.architectures[0]` unguarded: IndexError on `architectures: []`."""

from qcert.conformance.mutants import Mutant
from qcert.engine import fusion

_orig = fusion.deepseek_fusion


def unguarded(mode, architectures, *args, **kwargs):
    if mode == "auto":
        architectures[0]  # noqa: B018  (the pre-fix lookup)
    return _orig(mode, architectures, *args, **kwargs)


MUTANT = Mutant(
    id="fusion/unguarded-architectures",
    description="deepseek_fusion reads architectures[0] before checking the list is non-empty",
    upstream="sglang#25390",
    kills=["fusion/deepseek-decision-table", "fusion/deepseek-property"],
    patches=[("qcert.engine.fusion", "deepseek_fusion", unguarded)],
)
