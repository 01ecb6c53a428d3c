"""update_weights_from_disk (UPSTREAM.md section 4, sglang#22204): RL trainers push new weights into
a running engine. An update must be exact (bit-identical to a fresh load of the new checkpoint, forward
included), in place (same Parameter objects, same storages, kernel layouts re-applied) and
all-or-nothing (a bad checkpoint leaves every parameter bit-identical, with one clear error).
"""

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from qcert import fixtures
from qcert.conformance.case import case

IDS = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
TRTLLM = {"backends": {"nvfp4_moe": "torch_trtllm"}}
CASES = [  # (family, format, engine args); the layout one first: mutants stop at their first failure
    ("deepseek-v3", "ct-nvfp4", TRTLLM),
    ("llama", "bf16", {}),
    ("llama", "ct-mxfp4", {}),
    ("llama", "modelopt-nvfp4", {}),
    ("llama", "modelopt-fp8", {}),
    ("deepseek-v3", "modelopt-fp8", {}),
    ("deepseek-v3", "ct-fp8-dynamic", {}),  # per-channel expert scales [E, rows, 1]
    ("qwen3-moe", "ct-fp8-dynamic", {}),
    ("qwen3-moe", "ct-nvfp4", {}),
]


def raw(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).contiguous().view(torch.uint8).clone()


def snapshot(model) -> dict:
    return {n: (p, p.data_ptr(), raw(p)) for n, p in model.parameters().items()}


def check_update_equals_fresh(engine, family, fmt, kw):
    """Load, update to the seed-1 checkpoint, compare with a fresh load of it; returns the updated model."""
    old, new = fixtures.cached(family, fmt), fixtures.cached(family, fmt, seed=1)
    model = engine.load(old, **kw)
    before = snapshot(model)
    model.update_weights_from_disk(new)
    fresh = engine.load(new, **kw)
    after, ref = model.parameters(), fresh.parameters()
    assert set(after) == set(ref) == set(before), "parameter names changed"
    changed = 0
    for name, (obj, ptr, old_bytes) in before.items():
        p = after[name]
        assert p is obj, f"{name}: the update replaced the Parameter object"
        assert p.data_ptr() == ptr, f"{name}: the update moved the storage"
        assert torch.equal(raw(p), raw(ref[name])), f"{name}: differs from a fresh load of the new checkpoint"
        changed += not torch.equal(raw(p), old_bytes)
    assert changed, "the new checkpoint changed nothing (bad fixture)"
    assert model.report()["transforms"] == fresh.report()["transforms"]
    assert torch.equal(model.forward(IDS), fresh.forward(IDS))
    return model


@case("weight-update/equals-fresh-load",
      "after update_weights_from_disk every parameter equals a fresh load of the new checkpoint bit for bit, "
      "in the same Parameter objects and storages, and forward equals the fresh model's",
      refs=["sglang#22204"], features=["weight-update", "layouts", "bf16", "mxfp4", "nvfp4", "fp8", "llama",
                                       "deepseek-v3", "qwen-moe", "modelopt", "compressed-tensors"])
@pytest.mark.parametrize("family,fmt,kw", CASES, ids=[f"{f}-{m}" for f, m, _ in CASES])
def test_update_equals_fresh(engine, family, fmt, kw):
    check_update_equals_fresh(engine, family, fmt, kw)


GPU_CASES = [  # (family, format): dense linears in the tile layout, experts under the word map
    ("deepseek-v3", "quark-mxfp4"),
    ("qwen3.5-moe", "quark-mxfp4"),
    ("deepseek-v3", "modelopt-nvfp4"),
    ("llama", "ct-mxfp4"),
]


@case("weight-update/gpu-equals-fresh-load",
      "on the GPU, with the kernels and layouts the registry picks there, an update equals a fresh GPU load of "
      "the new checkpoint bit for bit, in place, forward included",
      refs=["sglang#22204"], features=["weight-update", "layouts", "kernels", "triton", "mxfp4", "nvfp4", "quark",
                                       "modelopt", "compressed-tensors", "deepseek-v3", "qwen-moe", "llama"],
      hardware="gpu")
@pytest.mark.parametrize("family,fmt", GPU_CASES, ids=[f"{f}-{m}" for f, m in GPU_CASES])
def test_gpu_update_equals_fresh(engine, family, fmt):
    model = check_update_equals_fresh(engine, family, fmt, {"device": "cuda"})
    assert model.report()["transforms"], "no kernel layout was applied on the GPU (nothing for the update to redo)"


def _corrupt(src, dst, how: str) -> None:
    shutil.copytree(src, dst)
    f = dst / "model.safetensors"
    if how == "truncated":
        data = f.read_bytes()
        f.write_bytes(data[: len(data) - 4096])
        return
    t = load_file(str(f))
    # the LAST layer: an update that writes as it validates has already written earlier layers
    victim = "model.layers.1.mlp.down_proj"
    if how == "missing":
        del t[f"{victim}.weight_scale_2"]
    elif how == "wrong-shape":
        w = t[f"{victim}.weight_scale"]
        t[f"{victim}.weight_scale"] = w[:, : w.shape[1] // 2].contiguous()
    elif how == "nan-scale":
        t[f"{victim}.weight_scale_2"] = torch.tensor(float("nan"))
    elif how == "zero-global-scale":
        t[f"{victim}.weight_scale_2"] = torch.tensor(0.0)
    save_file(t, str(f), metadata={"format": "pt"})


CORRUPTIONS = ["missing", "wrong-shape", "nan-scale", "zero-global-scale", "truncated"]


@case("weight-update/corrupt-leaves-weights-unchanged",
      "an update from a corrupt checkpoint (missing tensor, wrong shape, NaN or zero scale, truncated file) "
      "raises one clear error and leaves every parameter bit-identical",
      refs=["sglang#22204"], features=["weight-update", "bad-input", "nvfp4", "modelopt", "llama"],
      raises=(ValueError, "update refused, weights unchanged"))
@pytest.mark.parametrize("how", CORRUPTIONS)
def test_update_corrupt(engine, expected_error, tmp_path, how):
    new = fixtures.cached("llama", "modelopt-nvfp4", seed=1)
    bad = tmp_path / "bad"
    _corrupt(new, bad, how)
    model = engine.load(fixtures.cached("llama", "modelopt-nvfp4"))
    before = snapshot(model)
    out_before = model.forward(IDS)
    with expected_error as err:
        model.update_weights_from_disk(bad)
    assert str(bad) in str(err.value) or "model.layers.1.mlp.down_proj" in str(err.value), str(err.value)
    for name, p in model.parameters().items():
        obj, ptr, old = before[name]
        assert p is obj and p.data_ptr() == ptr and torch.equal(raw(p), old), f"{name} changed by a refused update"
    assert torch.equal(model.forward(IDS), out_before)


@case("weight-update/incompatible-config-refused",
      "an update whose checkpoint has another quantization scheme is refused and leaves the weights unchanged",
      refs=["sglang#22204"], features=["weight-update", "bad-input", "llama", "modelopt", "compressed-tensors"],
      raises=(ValueError, "update refused, weights unchanged"))
def test_update_incompatible(engine, expected_error):
    model = engine.load(fixtures.cached("llama", "modelopt-fp8"))
    before = snapshot(model)
    with expected_error:
        model.update_weights_from_disk(fixtures.cached("llama", "ct-fp8-dynamic"))
    assert all(torch.equal(raw(p), before[n][2]) for n, p in model.parameters().items())
