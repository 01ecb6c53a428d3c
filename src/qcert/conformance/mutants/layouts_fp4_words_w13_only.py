"""The FP4 word map written into the gate/up experts only: the down projection's experts are marked
as mapped (so their backend decodes the map) but keep the plain bytes, a post-load hook that misses
some of the modules it claims."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant import fp4_words_layout

_write_back = fp4_words_layout._write_back


def write_back_w13_only(layer, fn):
    if len(layer.rows) == 2:  # w13: [gate; up]
        _write_back(layer, fn)


MUTANT = Mutant(
    id="layouts/fp4-words-w13-only",
    description="the MoE word map is applied to w13 but not w2, whose backend still decodes it",
    upstream="class of bug: post-load transforms that skip modules they mark (sglang#22204)",
    kills=["layouts/fp4-words-in-place", "numerics/gpu-forward-matches-cpu"],
    patches=[("qcert.engine.quant.fp4_words_layout", "_write_back", write_back_w13_only)],
)
