"""NVFP4 experts whose gate and up carry different global scales are refused before anything is
written: at load (the conformance case nvfp4-formats/expert-global-scales-disagree-refused) and at
update, whole or partial (the loaded gate's value counts), leaving the weights bit-identical."""

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from qcert import fixtures
from qcert.engine.errors import UpdateError
from qcert.engine.loader import load

UP = "model.layers.1.mlp.experts.2.up_proj"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    good = fixtures.cached("deepseek-v3", "modelopt-nvfp4", experts=4)
    bad = tmp_path_factory.mktemp("ckpt") / "bad"
    shutil.copytree(good, bad)
    f = bad / "model.safetensors"
    t = load_file(str(f))
    t[f"{UP}.weight_scale_2"] = t[f"{UP}.weight_scale_2"] * 2
    save_file(t, str(f), metadata={"format": "pt"})
    return good, bad


@pytest.mark.parametrize("tensors", [None, [f"{UP}.weight_scale_2"]], ids=["whole", "partial"])
def test_update_with_disagreeing_expert_scales_is_refused_and_changes_nothing(checkpoints, tensors):
    good, bad = checkpoints
    model = load(good)
    before = {n: p.detach().clone() for n, p in model.parameters().items()}
    with pytest.raises(UpdateError, match="global scales") as err:
        model.update_weights_from_disk(bad, tensors=tensors)
    assert UP in str(err.value), str(err.value)
    for n, p in model.parameters().items():
        assert torch.equal(p.detach().view(torch.uint8), before[n].view(torch.uint8)), f"{n} changed"


def test_load_refuses_before_allocating(checkpoints):
    with pytest.raises(ValueError, match=f"global scales .*{UP}"):
        load(checkpoints[1])
