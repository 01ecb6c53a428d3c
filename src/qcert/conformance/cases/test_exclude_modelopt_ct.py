"""Exclude lists of ModelOpt (`exclude_modules` / `ignore`: fnmatch globs, exact names are globs too)
and compressed-tensors (`ignore`: exact names and `re:` regexes matched at the start), written in
checkpoint names and applied to the engine's fused modules (qkv_proj, gate_up_proj)."""

import pytest

from qcert import fixtures
from qcert.conformance.case import case


def schemes(report):
    return {m["name"]: (m["scheme"], m["excluded_by"]) for m in report["modules"] if m["kind"] == "linear"}


@case("exclude-modelopt/globs",
      "ModelOpt exclude_modules globs (`model.layers.0.self_attn*`, `*.mlp.down_proj`) and exact names "
      "leave exactly the matching modules, fused ones included, unquantized",
      refs=["sglang#22543"], features=["modelopt", "exclude-remap", "nvfp4", "fp8", "llama"])
@pytest.mark.parametrize("fmt", ["modelopt-nvfp4", "modelopt-fp8"])
def test_modelopt_globs(engine, fmt):
    exclude = ["lm_head", "model.layers.0.self_attn*", "*.mlp.down_proj"]
    r = engine.plan(fixtures.cached("llama", fmt, exclude=exclude))
    s = schemes(r)
    assert s["lm_head"] == ("unquantized", "lm_head")
    assert s["model.layers.0.self_attn.qkv_proj"] == ("unquantized", "model.layers.0.self_attn*")
    assert s["model.layers.0.self_attn.o_proj"] == ("unquantized", "model.layers.0.self_attn*")
    for i in (0, 1):
        assert s[f"model.layers.{i}.mlp.down_proj"] == ("unquantized", "*.mlp.down_proj")
        assert s[f"model.layers.{i}.mlp.gate_up_proj"][0] != "unquantized"
    assert s["model.layers.1.self_attn.qkv_proj"][0] != "unquantized"
    assert r["unmatched_exclude_entries"] == []


@case("exclude-modelopt/config-json-ignore",
      "without hf_quant_config.json, ModelOpt's config.json quantization_config `ignore` list is used",
      refs=["sglang#22543"], features=["modelopt", "exclude-remap", "nvfp4", "llama"])
def test_modelopt_config_json_only(engine, tmp_path):
    import shutil

    src = fixtures.cached("llama", "modelopt-nvfp4", exclude=["lm_head", "*.mlp.down_proj"])
    shutil.copytree(src, tmp_path / "c")
    (tmp_path / "c" / "hf_quant_config.json").unlink()
    s = schemes(engine.plan(tmp_path / "c"))
    assert s["model.layers.1.mlp.down_proj"] == ("unquantized", "*.mlp.down_proj")
    assert s["model.layers.1.self_attn.qkv_proj"][0].startswith("nvfp4")


@case("exclude-ct/regex",
      "compressed-tensors `ignore` takes exact names and `re:` regexes (matched at the start, no globs) "
      "and applies them to fused engine modules",
      refs=["sglang#22543"], features=["compressed-tensors", "exclude-remap", "nvfp4", "mxfp4", "fp8", "llama"])
@pytest.mark.parametrize("fmt", ["ct-nvfp4", "ct-mxfp4", "ct-fp8", "ct-fp8-dynamic"])
def test_ct_regex(engine, fmt):
    ignore = ["lm_head", r"re:model\.layers\.0\.mlp\..*_proj$", "model.layers.1.self_attn.o_proj"]
    r = engine.plan(fixtures.cached("llama", fmt, exclude=ignore))
    s = schemes(r)
    assert s["lm_head"] == ("unquantized", "lm_head")
    assert s["model.layers.0.mlp.gate_up_proj"] == ("unquantized", ignore[1])
    assert s["model.layers.0.mlp.down_proj"] == ("unquantized", ignore[1])
    assert s["model.layers.1.self_attn.o_proj"] == ("unquantized", ignore[2])
    for quantized in ("model.layers.1.mlp.gate_up_proj", "model.layers.0.self_attn.qkv_proj"):
        assert s[quantized][0] != "unquantized", quantized
    assert r["unmatched_exclude_entries"] == []
