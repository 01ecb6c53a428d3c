"""Exclude-name remap (UPSTREAM.md section 1; sglang#22543, sglang#25390).

Quark exclude lists name checkpoint modules (`mlp.gate_proj`, `language_model.`-prefixed for Kimi);
engines fuse and rename modules (`gate_up_proj`, `fused_qkv_a_proj_with_mqa`, no wrapper prefix). An
excluded module must stay unquantized and load the checkpoint's BF16 tensors; everything else keeps
the configured scheme. What the checkpoint stores is read from its headers, not from the engine.
"""

import pytest
import torch

from qcert import fixtures
from qcert.conformance import checkpoints as ck
from qcert.conformance.case import case

REFS = ["sglang#22543", "sglang#25390"]
FEATURES = ["exclude-remap", "quark", "mxfp4"]
TINY = dict(layers=2, dense_layers=1, experts=4, top_k=2, act=None)


def _exclude(family: str, form: str) -> list[str]:
    p = "language_model." if family == "kimi-k2.5" else ""
    routers = [f"{p}lm_head", f"{p}model.layers.1.mlp.gate"]
    return {
        "exact-routers": routers,
        # every shard of layer 0's dense MLP and of layer 1's shared expert: fused gate_up_proj excluded
        "exact-fused-mlp": routers + [f"{p}model.layers.0.mlp.{n}" for n in ("gate_proj", "up_proj", "down_proj")]
        + [f"{p}model.layers.1.mlp.shared_experts.{n}" for n in ("gate_proj", "up_proj", "down_proj")],
        # both shards of fused_qkv_a_proj_with_mqa (and the rest of attention) through one regex
        "regex-attention": routers + [f"re:{p.replace('.', '[.]')}model[.]layers[.]\\d+[.]self_attn[.].*"],
    }[form]


def _fixture(family, form):
    return fixtures.cached(family, "quark-mxfp4", exclude=_exclude(family, form), **TINY)


def _by_name(report):
    return {m["name"]: m for m in report["modules"]}


@case("exclude-remap/excluded-modules-unquantized",
      "a module is unquantized iff the checkpoint stores its weights unquantized, fused modules included",
      refs=REFS, features=FEATURES + ["deepseek-v3", "glm-5", "kimi-k2.5"])
@pytest.mark.parametrize("form", ["exact-routers", "exact-fused-mlp", "regex-attention"])
@pytest.mark.parametrize("family", ["deepseek-v3", "glm-5", "kimi-k2.5"])
def test_excluded_modules_unquantized(engine, family, form):
    path = _fixture(family, form)
    problems, checked = ck.scheme_mismatches(engine.plan(path, device="cpu"), ck.stored(path))
    assert not problems, "; ".join(problems[:5])
    assert checked >= 8


@case("exclude-remap/excluded-loads-checkpoint-bf16",
      "an excluded fused module's parameter equals the checkpoint's BF16 shard tensors, concatenated",
      refs=REFS, features=FEATURES + ["deepseek-v3", "kimi-k2.5"])
@pytest.mark.parametrize("family", ["deepseek-v3", "kimi-k2.5"])
def test_excluded_loads_checkpoint_bf16(engine, family):
    path = _fixture(family, "exact-fused-mlp")
    model = engine.load(path, device="cpu")
    params = model.parameters()
    fused = [m for m in model.report()["modules"] if m["name"].endswith("gate_up_proj") and m["scheme"] == "unquantized"]
    assert len(fused) >= 2, "layer 0's MLP and layer 1's shared expert gate_up_proj should be excluded"
    for m in fused:
        expected = torch.cat([ck.tensor(path, s) for s in m["sources"] if s.endswith(".weight")])
        got = params[f"{m['name']}.weight"]
        assert got.dtype == torch.bfloat16 and torch.equal(got, expected), m["name"]


@case("exclude-remap/partial-shard-exclusion-error",
      "excluding some shards of a fused module but not others is an error naming the module",
      refs=REFS, features=FEATURES + ["deepseek-v3", "bad-input"], raises=(ValueError, "same scheme"))
def test_partial_shard_exclusion(engine, expected_error):
    path = fixtures.cached("deepseek-v3", "quark-mxfp4", exclude=["lm_head", "model.layers.1.mlp.gate",
                                                                   "model.layers.0.mlp.gate_proj"], **TINY)
    with expected_error as err:
        engine.plan(path, device="cpu")
    assert "model.layers.0.mlp.gate_up_proj" in str(err.value)


@case("exclude-remap/regex-anchored-at-start",
      "`re:` entries match with re.match: anchored at the start, so a bare suffix pattern excludes nothing",
      refs=REFS, features=FEATURES + ["deepseek-v3"])
def test_regex_anchored(engine):
    entries = ["lm_head", "model.layers.1.mlp.gate", "re:self_attn[.]o_proj", "re:.*layers[.]1[.]self_attn[.]o_proj$"]
    path = fixtures.cached("deepseek-v3", "quark-mxfp4", exclude=entries, **TINY)
    report = engine.plan(path, device="cpu")
    mods = _by_name(report)
    assert mods["model.layers.0.self_attn.o_proj"]["scheme"] != "unquantized"
    assert mods["model.layers.1.self_attn.o_proj"]["scheme"] == "unquantized"
    assert "re:self_attn[.]o_proj" in report["unmatched_exclude_entries"]


@case("exclude-remap/globs-match-nothing",
      "Quark exclude entries are not globs: `*self_attn*` matches nothing and is reported unmatched",
      refs=REFS, features=FEATURES + ["deepseek-v3"])
def test_globs_match_nothing(engine):
    entries = ["lm_head", "model.layers.1.mlp.gate", "*self_attn*", "model.layers.*.mlp.experts.*"]
    path = fixtures.cached("deepseek-v3", "quark-mxfp4", exclude=entries, **TINY)
    report = engine.plan(path, device="cpu")
    for m in report["modules"]:
        if m["kind"] == "linear" and ("self_attn" in m["name"] or "experts" in m["name"]):
            assert m["scheme"] != "unquantized", f"{m['name']} excluded by a glob entry"
    assert report["unmatched_exclude_entries"] == ["*self_attn*", "model.layers.*.mlp.experts.*"]


@case("exclude-remap/kimi-language-model-forms",
      "Kimi-K2.5 exclude entries written with `language_model.` hit the engine's unprefixed modules, "
      "and the effective entry list keeps order with no duplicates",
      refs=["sglang#25390"], features=FEATURES + ["kimi-k2.5"])
def test_kimi_forms(engine):
    entries = _exclude("kimi-k2.5", "exact-fused-mlp") + ["language_model.lm_head"]
    path = fixtures.cached("kimi-k2.5", "quark-mxfp4", exclude=entries, **TINY)
    report = engine.plan(path, device="cpu")
    mods = _by_name(report)
    for name in ("lm_head", "model.layers.1.mlp.gate", "model.layers.0.mlp.gate_up_proj",
                 "model.layers.1.mlp.shared_experts.gate_up_proj", "model.layers.1.mlp.shared_experts.down_proj"):
        assert mods[name]["scheme"] == "unquantized", f"{name}: {mods[name]['scheme']}"
    effective = report["exclude_entries"]
    assert len(effective) == len(set(effective)), f"duplicate effective exclude entries: {effective}"
    assert effective.index("language_model.lm_head") < effective.index("language_model.model.layers.1.mlp.gate")
    assert report["unmatched_exclude_entries"] == []


@case("exclude-remap/mappings-isolated-between-loads",
      "loads of different architectures in one process never change each other's fused-module mapping",
      refs=["sglang#25390"], features=FEATURES + ["deepseek-v3", "kimi-k2.5", "glm-5"])
def test_mappings_isolated(engine):
    ds = fixtures.cached("deepseek-v3", "quark-mxfp4", exclude=_exclude("deepseek-v3", "exact-fused-mlp"), **TINY)
    first = engine.load(ds, device="cpu").report()
    expected = {"fused_qkv_a_proj_with_mqa": ["q_a_proj", "kv_a_proj_with_mqa"], "gate_up_proj": ["gate_proj", "up_proj"]}
    assert first["fused_modules"] == expected
    for family in ("kimi-k2.5", "glm-5"):
        engine.load(fixtures.cached(family, "quark-mxfp4", exclude=_exclude(family, "exact-fused-mlp"), **TINY),
                    device="cpu")
    again = engine.load(ds, device="cpu").report()
    assert again["fused_modules"] == expected
    assert [(m["name"], m["scheme"]) for m in again["modules"]] == [(m["name"], m["scheme"]) for m in first["modules"]]
