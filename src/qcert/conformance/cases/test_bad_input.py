"""Bad checkpoints get one clear error naming the file, tensor or field: never a deep traceback,
never a half-loaded model. Each case breaks a copy of a good fixture in one way."""

import json

import pytest
import torch

from qcert import fixtures
from qcert.conformance import checkpoints as ck
from qcert.conformance.case import case

TINY = dict(layers=2, dense_layers=1, experts=4, top_k=2, act=None)
F = ["bad-input", "deepseek-v3"]


def _copy(tmp_path, fmt="quark-mxfp4"):
    return ck.copy(fixtures.cached("deepseek-v3", fmt, **TINY), tmp_path / "ckpt")


@case("bad-input/missing-architectures", "no architectures and an unknown model_type is an error naming the field",
      features=F, raises=(ValueError, "architectures"))
def test_missing_architectures(engine, expected_error, tmp_path):
    path = ck.edit_config(_copy(tmp_path), lambda c: (c.pop("architectures"), c.update(model_type="mystery")))
    with expected_error:
        engine.plan(path, device="cpu")


@case("bad-input/unknown-quant-method", "an unknown quant_method is an error naming it",
      features=F + ["quark"], raises=(ValueError, "quant_method 'awq-9000'"))
def test_unknown_method(engine, expected_error, tmp_path):
    path = ck.edit_config(_copy(tmp_path), lambda c: c["quantization_config"].update(quant_method="awq-9000"))
    with expected_error:
        engine.plan(path, device="cpu")


@case("bad-input/quark-bad-group-size", "an MXFP4 weight spec with group_size 16 is an error naming the field",
      features=F + ["quark", "mxfp4"], raises=(ValueError, "group_size"))
def test_bad_group_size(engine, expected_error, tmp_path):
    path = ck.edit_config(_copy(tmp_path), lambda c: c["quantization_config"]["global_quant_config"]["weight"]
                          .update(group_size=16))
    with expected_error:
        engine.plan(path, device="cpu")


@case("bad-input/quark-unknown-dtype", "a weight dtype Quark-MXFP4 readers do not know is an error naming it",
      features=F + ["quark"], raises=(ValueError, "'int3'"))
def test_unknown_dtype(engine, expected_error, tmp_path):
    path = ck.edit_config(_copy(tmp_path), lambda c: c["quantization_config"]["global_quant_config"]["weight"]
                          .update(dtype="int3"))
    with expected_error:
        engine.plan(path, device="cpu")


@case("bad-input/missing-scale-tensor", "a quantized weight without its scale tensor is an error naming the tensor",
      features=F + ["quark", "mxfp4"], raises=(ValueError, "model.layers.0.self_attn.o_proj.weight_scale"))
def test_missing_scale(engine, expected_error, tmp_path):
    path = ck.rewrite_tensors(_copy(tmp_path), lambda t: t.pop("model.layers.0.self_attn.o_proj.weight_scale"))
    with expected_error:
        engine.load(path, device="cpu")


@case("bad-input/wrong-shape", "a tensor whose shape does not fit its module's scheme is an error naming both",
      features=F + ["quark", "mxfp4"], raises=(ValueError, "model.layers.0.self_attn.o_proj.weight"))
def test_wrong_shape(engine, expected_error, tmp_path):
    def change(t):
        w = t["model.layers.0.self_attn.o_proj.weight"]
        t["model.layers.0.self_attn.o_proj.weight"] = torch.cat([w, w], dim=1)

    with expected_error as err:
        engine.plan(ck.rewrite_tensors(_copy(tmp_path), change), device="cpu")
    assert "expected" in str(err.value) and "found" in str(err.value)


@case("bad-input/truncated-safetensors", "a truncated safetensors file is an error naming the file",
      features=F, raises=(ValueError, "truncated"))
@pytest.mark.parametrize("keep", [0.0005, 0.5])
def test_truncated(engine, expected_error, tmp_path, keep):
    path = ck.truncate(_copy(tmp_path, "bf16"), keep)
    with expected_error as err:
        engine.plan(path, device="cpu")
    assert "model.safetensors" in str(err.value)


@case("bad-input/index-outside-checkpoint", "an index naming a file outside the checkpoint directory is refused",
      features=F, raises=(ValueError, "outside the checkpoint"))
def test_index_outside(engine, expected_error, tmp_path):
    path = ck.copy(fixtures.cached("deepseek-v3", "bf16", shards=2, **TINY), tmp_path / "ckpt")
    (tmp_path / "elsewhere.safetensors").write_bytes((path / "model-00001-of-00002.safetensors").read_bytes())
    index = path / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"] = {k: ("../elsewhere.safetensors" if v.startswith("model-00001") else v)
                          for k, v in data["weight_map"].items()}
    index.write_text(json.dumps(data))
    with expected_error:
        engine.plan(path, device="cpu")


@case("bad-input/unclaimed-tensor-refused", "a tensor no module claims is listed by plan and refused by load",
      features=F, raises=(ValueError, "model.layers.0.mlp.mystery.weight"))
def test_unclaimed(engine, expected_error, tmp_path):
    path = ck.rewrite_tensors(_copy(tmp_path, "bf16"), lambda t: t.update({"model.layers.0.mlp.mystery.weight": torch.ones(2)}))
    assert any(u["tensor"] == "model.layers.0.mlp.mystery.weight" for u in engine.plan(path, device="cpu")["unclaimed"])
    with expected_error:
        engine.load(path, device="cpu")
