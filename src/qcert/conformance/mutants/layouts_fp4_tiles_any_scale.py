"""The GEMV tile layout taken by every dense MXFP4 linear whatever its block scales: the kernel's
one-multiply decode (layouts.MX_TILES_SCALES) then reads blocks it cannot decode exactly, tiny ones
flushed, huge ones infinite. The class of bug: a kernel layout applied without checking the values
its kernel assumes (post-load repacks gated on shape alone)."""

from qcert.conformance.mutants import Mutant


def no_problem(w, s):
    return None


MUTANT = Mutant(
    id="layouts/fp4-tiles-any-scale",
    description="dense MXFP4 weights take the tile layout even with block scales its one-multiply decode cannot take",
    upstream="class of bug: post-load repacks gated on shape alone (sglang#22204)",
    kills=["layouts/mxfp4-scale-window"],
    patches=[("qcert.kernels.layouts", "fp4_tiles_problem", no_problem)],
)
