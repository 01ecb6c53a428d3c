"""The MLA hook is gated on the architecture only, so it also runs for unquantized checkpoints."""

from qcert.conformance.mutants import Mutant


def arch_only(hook, architectures, quant_method):
    if not architectures:
        return False, "config.architectures is empty or missing"
    return architectures[0] in hook.architectures, f"architecture {architectures[0]!r}"


MUTANT = Mutant(
    id="post-load/ignores-quant-method",
    description="post-load hooks ignore the quant method they declare",
    upstream="sglang#22543",
    kills=["post-load/mla-hook-not-for-other-methods"],
    patches=[("qcert.engine.hooks", "gate", arch_only)],
)
