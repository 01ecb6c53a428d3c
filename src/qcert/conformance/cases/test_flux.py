"""ModelOpt FP8 FLUX transformers (UPSTREAM.md section 6, sglang#20082).

A FLUX transformer exported by ModelOpt in FP8 must load with no flags: the `quantization_config` in
its config.json selects the FP8 diffusion config; `ignore` globs match the full module path or its
first component (case-sensitive); ignored modules stay BF16; FP8 tensors that land in modules that
are not quantization-aware (the AdaLayerNorm projections) are dequantized at load WITH their
weight_scale; a missing scale is an error naming the tensor.

Numbers: forwards run in float32 against the fixture's twin (float32 weights equal to the
dequantized checkpoint). FP8 linears also quantize activations with the static input_scale, so the
whole-model bound is the fp8 format's own quantize-dequantize error (QDQ_BOUNDS["fp8"]).
"""

from fnmatch import fnmatchcase

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qcert import fixtures
from qcert.conformance import checkpoints as ck
from qcert.conformance.case import case
from qcert.fixtures import flux as fx
from qcert.kernels.tolerances import QDQ_BOUNDS, assert_close_rel

REFS = ["sglang#20082"]
FEATURES = ["flux", "diffusion", "modelopt", "fp8"]
FMT = "modelopt-fp8-diffusion"
ADANORM = {"transformer_blocks.0.norm1.linear", "transformer_blocks.0.norm1_context.linear",
           "single_transformer_blocks.0.norm.linear"}
PLAIN = ADANORM | {"norm_out.linear"}  # not quantization-aware: FP8 there is dequantized at load
# Everything except the AdaLayerNorm projections ignored: the only FP8 tensors are dequantized at load.
ONLY_ADANORM_FP8 = ["x_embedder", "context_embedder", "time_text_embed", "proj_out", "norm_out",
                    "*.attn.*", "*.ff.*", "*.ff_context.*", "*.proj_mlp", "*.proj_out"]


def _fp8(exclude=None, **kw):
    return fixtures.cached("flux", FMT, exclude=exclude, twin=True, **kw)


def _inputs(path):
    import json

    return fx.inputs(json.loads((path / "config.json").read_text()))


def _linears(report) -> dict:
    return {m["name"]: m for m in report["modules"] if m["kind"] == "linear"}


def spec_ignores(entry: str, module: str) -> bool:
    """The documented rule: an fnmatch glob on the full path or on its first component."""
    return fnmatchcase(module, entry) or fnmatchcase(module.split(".", 1)[0], entry)


def _check_ignore(engine, entries):
    """The plan's per-module decisions and unmatched entries are exactly what the rule says."""
    report = engine.plan(_fp8(list(entries)), device="cpu")
    linears = _linears(report)
    for name, m in linears.items():
        hit = next((e for e in entries if spec_ignores(e, name)), None)
        assert m["excluded_by"] == hit, f"{name}: excluded_by {m['excluded_by']!r}, the rule says {hit!r}"
        assert m["dequantized_at_load"] == (hit is None and name in PLAIN), f"{name}: {m}"
        assert (m["scheme"] == "unquantized") == (hit is not None or name in PLAIN), f"{name}: scheme {m['scheme']}"
    unmatched = [e for e in entries if not any(spec_ignores(e, n) for n in linears)]
    assert report["unmatched_exclude_entries"] == unmatched
    return linears


# (entries, module, expected excluded_by) -- one ignore list per row
IGNORE_TABLE = [
    (["proj_out"], "proj_out", "proj_out"),
    (["proj_out"], "single_transformer_blocks.0.proj_out", None),  # first component is not `proj_out`
    (["time_text_embed"], "time_text_embed.timestep_embedder.linear_1", "time_text_embed"),
    (["norm_out"], "norm_out.linear", "norm_out"),
    (["norm_out*"], "norm_out.linear", "norm_out*"),
    (["transformer_blocks"], "transformer_blocks.0.attn.to_q", "transformer_blocks"),
    (["transformer_blocks"], "single_transformer_blocks.0.attn.to_q", None),
    (["x_embedde?"], "x_embedder", "x_embedde?"),
    (["[cx]*_embedder"], "context_embedder", "[cx]*_embedder"),
    (["*.attn.to_[qk]"], "transformer_blocks.0.attn.to_k", "*.attn.to_[qk]"),
    (["*.attn.to_[qk]"], "transformer_blocks.0.attn.to_v", None),
    (["Proj_out"], "proj_out", None),  # case-sensitive
    (["X_EMBEDDER"], "x_embedder", None),
]


@case("flux/ignore-table", "ModelOpt diffusion ignore globs match the full path or its first component, case-sensitive",
      refs=REFS, features=FEATURES)
@pytest.mark.parametrize("entries,module,expected", IGNORE_TABLE, ids=[f"{e[0]}->{m}" for e, m, _ in IGNORE_TABLE])
def test_ignore_table(engine, entries, module, expected):
    linears = _check_ignore(engine, entries)
    assert linears[module]["excluded_by"] == expected
    if expected is None and module not in PLAIN:
        assert linears[module]["scheme"].startswith("fp8"), linears[module]


_ROOTS = ["proj_out", "x_embedder", "context_embedder", "norm_out", "time_text_embed", "transformer_blocks",
          "single_transformer_blocks"]
_LEAVES = ["to_q", "to_k", "to_v", "proj_mlp", "proj_out", "linear", "to_out.0", "net.2"]
_entry = st.one_of(
    st.sampled_from(_ROOTS),  # bare first component
    st.sampled_from(_ROOTS).map(lambda r: r + "*"),
    st.sampled_from(_ROOTS).map(lambda r: r + ".*"),
    st.sampled_from(_ROOTS).map(str.upper),  # never matches: case-sensitive
    st.sampled_from(_LEAVES).map(lambda leaf: "*." + leaf),
    st.sampled_from(_ROOTS).map(lambda r: r[:-1] + "?"),
    st.sampled_from(["norm_out.linear", "transformer_blocks.0.ff.net.0.proj", "nothing_here", "*norm1*"]),
)


@case("flux/ignore-property", "for any ignore list, the plan's exclusions and unmatched entries follow the glob rule",
      refs=REFS, features=FEATURES + ["hypothesis"])
@settings(max_examples=12, deadline=None)
@given(entries=st.lists(_entry, min_size=1, max_size=4, unique=True))
@example(entries=["time_text_embed", "NORM_OUT"])
@example(entries=["norm_out", "*.proj_out"])
def test_ignore_property(engine, entries):
    _check_ignore(engine, entries)


@case("flux/auto-detect", "a ModelOpt FP8 FLUX checkpoint loads as FP8 with no flags; ignored layers stay BF16",
      refs=REFS, features=FEATURES)
def test_auto_detect(engine):
    path = _fp8()
    report = engine.plan(path, device="cpu")
    assert report["family"] == "flux" and report["quant_method"] == "modelopt"
    linears = _linears(report)
    for name, m in linears.items():
        ignored = any(spec_ignores(e, name) for e in fx.TYPICAL_IGNORE)
        if ignored:
            assert m["scheme"] == "unquantized" and m["excluded_by"], m
        elif name in ADANORM:
            assert m["dequantized_at_load"] and m["scheme"] == "unquantized", m
        else:
            assert m["scheme"] == "fp8/per-tensor/a:fp8", m
            assert f"{name}.input_scale" in m["sources"] and f"{name}.weight_scale" in m["sources"]
    params = engine.load(path, device="cpu", dtype="float32").parameters()
    assert params["transformer_blocks.0.attn.to_q.weight"].dtype == torch.float8_e4m3fn
    assert params["proj_out.weight"].dtype == torch.float32  # ignored: loaded from the BF16 tensor


@case("flux/adaln-dequant", "FP8 AdaLayerNorm weights are dequantized at load as fp32(w) * weight_scale",
      refs=REFS, features=FEATURES + ["numerics"])
def test_adaln_dequant(engine):
    path = _fp8(ONLY_ADANORM_FP8)
    twin = fixtures.cached("flux", FMT, exclude=ONLY_ADANORM_FP8, twin=True)
    model = engine.load(path, device="cpu", dtype="float32")
    report = model.report()
    converted = {m["name"] for m in report["modules"] if m["dequantized_at_load"]}
    assert converted == ADANORM
    params = model.parameters()
    for name in ADANORM:
        expected = ck.tensor(path, f"{name}.weight").float() * ck.tensor(path, f"{name}.weight_scale").float()
        assert torch.equal(params[f"{name}.weight"], expected), name
    # Every other module is BF16 here, so the forward must equal the twin's to float32 rounding.
    ref = engine.load(fixtures.twin(twin), device="cpu", dtype="float32").forward(**_inputs(path))
    assert_close_rel(model.forward(**_inputs(path)), ref, "fp32", "adaln-only FP8 vs dequantized twin")


@case("flux/fp8-forward", "the FP8 FLUX transformer's noise prediction matches the dequantized float reference",
      refs=REFS, features=FEATURES + ["numerics"])
@pytest.mark.parametrize("seed", [0, 1])
def test_fp8_forward(engine, seed):
    path = fixtures.cached("flux", FMT, twin=True, seed=seed)
    inputs = fx.inputs(fx.config(), seed=seed)
    out = engine.load(path, device="cpu", dtype="float32").forward(**inputs)
    ref = engine.load(fixtures.twin(path), device="cpu", dtype="float32").forward(**inputs)
    assert out.dtype == torch.float32 and out.shape == inputs["hidden_states"].shape
    assert_close_rel(out, ref, "fp8", "FP8 FLUX vs dequantized twin", bound=QDQ_BOUNDS["fp8"])


@case("flux/missing-scale", "an FP8 AdaLayerNorm weight without weight_scale is an error naming the tensor",
      refs=REFS, features=FEATURES + ["bad-input"],
      raises=(ValueError, "transformer_blocks.0.norm1.linear.weight_scale"))
def test_missing_scale(engine, expected_error, tmp_path):
    path = ck.copy(_fp8(), tmp_path / "ckpt")
    ck.rewrite_tensors(path, lambda t: t.pop("transformer_blocks.0.norm1.linear.weight_scale"))
    report = engine.plan(path, device="cpu")
    assert [m["tensor"] for m in report["missing"]] == ["transformer_blocks.0.norm1.linear.weight_scale"]
    with expected_error:
        engine.load(path, device="cpu")


@case("flux/quant-algo", "a ModelOpt diffusion config with a missing or unsupported quant_algo is an error naming the field",
      refs=REFS, features=FEATURES + ["bad-input"], raises=(ValueError, "quant_algo"))
@pytest.mark.parametrize("algo", [None, "NVFP4", "fp8"])
def test_quant_algo(engine, expected_error, tmp_path, algo):
    path = ck.copy(_fp8(), tmp_path / "ckpt")

    def change(cfg):
        if algo is None:
            del cfg["quantization_config"]["quant_algo"]
        else:
            cfg["quantization_config"]["quant_algo"] = algo

    ck.edit_config(path, change)
    with expected_error as err:
        engine.plan(path, device="cpu")
    assert algo is None or repr(algo) in str(err.value)


@case("flux/certify-plan-load", "plan and load of an FP8 FLUX checkpoint claim every tensor and miss none",
      refs=REFS, features=FEATURES + ["certify"])
def test_certify_plan_load(engine):
    path = _fp8()
    report = engine.plan(path, device="cpu")
    assert report["unclaimed"] == [] and report["missing"] == []
    assert report["unmatched_exclude_entries"] == []
    assert report["quant_method"] == "modelopt"
    stored = ck.stored(path)
    claimed = {s for m in report["modules"] for s in m["sources"]}
    assert claimed == set(stored)
    model = engine.load(path, device="cpu")
    assert [m["scheme"] for m in model.report()["modules"]] == [m["scheme"] for m in report["modules"]]
    out = model.forward(**_inputs(path))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
