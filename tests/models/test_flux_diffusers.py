"""The engine's FLUX transformer against diffusers' own FluxTransformer2DModel on the same weights."""

import json

import pytest
import torch

from qcert import fixtures
from qcert.engine import loader
from qcert.fixtures import flux as fx

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("params", [{}, {"guidance": False, "double": 2, "single": 2}], ids=["dev", "schnell-like"])
def test_matches_diffusers(tmp_path, params):
    path = fixtures.build(tmp_path / "flux", "flux", "bf16", **params)
    cfg = json.loads((path / "config.json").read_text())
    inputs = fx.inputs(cfg, batch=2, seed=3)
    ours = loader.load(path, device="cpu", dtype="float32").forward(**inputs)
    ref_model = diffusers.FluxTransformer2DModel.from_pretrained(str(path), torch_dtype=torch.float32).eval()
    with torch.no_grad():
        ref = ref_model(**inputs, return_dict=False)[0]
    assert ours.dtype == torch.float32 and ours.shape == ref.shape
    err = float((ours - ref).norm() / ref.norm())
    assert err < 1e-5, f"relative error vs diffusers {err:.3e}"


def test_fp8_twin_is_diffusers_loadable(tmp_path):
    """The FP8 fixture's twin (float32, dequantized) is a plain diffusers checkpoint: the reference the
    FP8 cases compare against is diffusers' FLUX too."""
    path = fixtures.build(tmp_path / "fp8", "flux", "modelopt-fp8-diffusion", twin=True)
    twin = fixtures.twin(path)
    inputs = fx.inputs(json.loads((path / "config.json").read_text()))
    ours = loader.load(twin, device="cpu", dtype="float32").forward(**inputs)
    ref_model = diffusers.FluxTransformer2DModel.from_pretrained(twin, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        ref = ref_model(**inputs, return_dict=False)[0]
    assert float((ours - ref).norm() / ref.norm()) < 1e-5


def test_missing_guidance_is_an_error(tmp_path):
    path = fixtures.build(tmp_path / "flux", "flux", "bf16")
    inputs = fx.inputs(json.loads((path / "config.json").read_text()))
    inputs.pop("guidance")
    with pytest.raises(ValueError, match="guidance"):
        loader.load(path, device="cpu").forward(**inputs)
