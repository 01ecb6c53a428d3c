"""The indexed exact-or-regex matcher returns exactly what a first-match scan returns."""

from hypothesis import given
from hypothesis import strategies as st

from qcert.engine.quant import matching

NAMES = [f"model.layers.{i}.mlp.experts.{e}.{p}" for i in range(3) for e in range(3) for p in ("gate_proj", "down_proj")]
NAMES += ["lm_head", "model.layers.1.self_attn.o_proj", "model.layers.10.mlp.gate"]
REGEXES = ["re:.*experts[.]1[.].*", "re:model[.]layers[.]1[.].*", "re:lm", "re:.*o_proj$", "re:nothing", "re:.*gate"]
entries = st.lists(st.sampled_from(NAMES + REGEXES + ["model.layers.*.mlp.gate"]), max_size=8)


def scan(entries, name):
    return next((e for e in entries if matching.match_exact_or_regex(e, name)), None)


@given(entries, st.sampled_from(NAMES))
def test_index_equals_scan(entries, name):
    assert matching.first_match(entries, name, matching.match_exact_or_regex) == scan(entries, name)


def test_other_matchers_scan():
    assert matching.first_match(["model.layers.*.mlp.gate"], "model.layers.10.mlp.gate", matching.match_glob)
    assert matching.first_match(["model.layers.*.mlp.gate"], "model.layers.10.mlp.gate",
                                matching.match_exact_or_regex) is None
