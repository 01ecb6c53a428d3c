"""A backend asked for by name that cannot run is quietly replaced by the preferred available one:
the load report and every figure then describe a kernel that never ran."""

from qcert.conformance.mutants import Mutant
from qcert.kernels import registry

_real_run = registry.run


def run_with_fallback(op, ctx, args, kwargs, requested=None, *, layout=None):
    try:
        return _real_run(op, ctx, args, kwargs, requested, layout=layout)
    except registry.BackendUnavailable:
        if requested is None:
            raise
        return _real_run(op, ctx, args, kwargs, None, layout=layout)


MUTANT = Mutant(
    id="kernels/requested-backend-falls-back",
    description="an unavailable requested backend silently falls back to the preferred available one",
    upstream="class of bug: silent kernel fallbacks (issue 7: asked for and unavailable is an error)",
    kills=["kernels/requested-backend-unavailable-is-an-error"],
    patches=[("qcert.kernels.registry", "run", run_with_fallback)],
)
