"""`config.architectures[0]` indexed without a guard: IndexError / TypeError on [] or None."""

from qcert.conformance.mutants import Mutant


def unguarded(hook, architectures, quant_method):
    ok = architectures[0] in hook.architectures and quant_method in hook.quant_methods
    return ok, f"architecture {architectures[0]!r}"


MUTANT = Mutant(
    id="post-load/unguarded-architectures",
    description="the hook gate reads architectures[0] unguarded",
    upstream="sglang#22543",
    kills=["post-load/empty-architectures-safe"],
    patches=[("qcert.engine.hooks", "gate", unguarded)],
)
