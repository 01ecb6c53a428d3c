"""Kernel layouts applied in place (UPSTREAM.md section 4, sglang#22204): NVFP4 MoE experts in the
TRT-LLM FP4 layout keep their Parameters (same objects, same storages), hold exactly the permuted
checkpoint values, report each transform, and compute what the plain layout computes.
"""

import pytest
import torch

from qcert import fixtures
from qcert.conformance.case import case
from qcert.kernels import layouts

IDS = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
TRTLLM = {"backends": {"nvfp4_moe": "torch_trtllm"}}
FORMATS = ["modelopt-nvfp4", "ct-nvfp4"]


def raw(t):
    return t.detach().reshape(-1).contiguous().view(torch.uint8)


def expert_layers(params):
    return sorted({n.rsplit(".", 1)[0] for n in params if ".experts" in n and n.endswith(".weight_scale")})


@case("layouts/trtllm-in-place",
      "the TRT-LLM FP4 MoE layout is written into the experts' own parameters (names kept, values equal to "
      "the layout of the plain load), reported as in place, and forward equals the plain layout's",
      refs=["sglang#22204"], features=["layouts", "nvfp4", "deepseek-v3", "modelopt", "compressed-tensors"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_trtllm_in_place(engine, fmt):
    path = fixtures.cached("deepseek-v3", fmt)
    plain, shuffled = engine.load(path), engine.load(path, **TRTLLM)
    pp, ps = plain.parameters(), shuffled.parameters()
    assert set(pp) == set(ps), f"parameters added or removed: {sorted(set(pp) ^ set(ps))[:4]}"
    layers = expert_layers(ps)
    assert layers, "fixture has no NVFP4 experts"
    records = {r["param"]: r for r in shuffled.report()["transforms"]}
    for layer in layers:
        w13 = "w13" in layer or layer.endswith("gate_up_proj")
        fn = layouts.trtllm_fp4_w13_layout if w13 else layouts.trtllm_fp4_w2_layout
        w, s = fn(pp[f"{layer}.weight"], pp[f"{layer}.weight_scale"])
        assert torch.equal(raw(ps[f"{layer}.weight"]), raw(w)), f"{layer}.weight is not in the TRT-LLM layout"
        assert torch.equal(raw(ps[f"{layer}.weight_scale"]), raw(s)), f"{layer}.weight_scale not in the layout"
        for p in ("weight", "weight_scale"):
            rec = records.get(f"{layer}.{p}")
            assert rec and rec["in_place"] is True, f"{layer}.{p}: transform not reported in place: {rec}"
    assert torch.equal(plain.forward(IDS), shuffled.forward(IDS))
    assert shuffled.report()["backends"]["nvfp4_moe"] == "torch_trtllm"


@case("layouts/update-rewrites-layout",
      "after update_weights_from_disk the experts hold the TRT-LLM layout of the NEW checkpoint in the same "
      "storages (the transform reran), and forward follows the new weights",
      refs=["sglang#22204"], features=["layouts", "weight-update", "nvfp4", "deepseek-v3", "modelopt"])
def test_update_rewrites_layout(engine):
    old, new = fixtures.cached("deepseek-v3", "modelopt-nvfp4"), fixtures.cached("deepseek-v3", "modelopt-nvfp4", seed=1)
    model = engine.load(old, **TRTLLM)
    ptrs = {n: p.data_ptr() for n, p in model.parameters().items()}
    model.update_weights_from_disk(new)
    plain_new = engine.load(new).parameters()
    ps = model.parameters()
    for layer in expert_layers(ps):
        fn = layouts.trtllm_fp4_w13_layout if "w13" in layer else layouts.trtllm_fp4_w2_layout
        w, s = fn(plain_new[f"{layer}.weight"], plain_new[f"{layer}.weight_scale"])
        assert torch.equal(raw(ps[f"{layer}.weight"]), raw(w)), f"{layer}.weight: stale or unshuffled after update"
        assert torch.equal(raw(ps[f"{layer}.weight_scale"]), raw(s)), f"{layer}.weight_scale stale after update"
        assert ps[f"{layer}.weight"].data_ptr() == ptrs[f"{layer}.weight"]
    assert torch.equal(model.forward(IDS), engine.load(new).forward(IDS))


@case("layouts/unusable-layout-clear-error",
      "when the experts cannot take the TRT-LLM layout (rows not a multiple of 128) a backend that needs it "
      "is refused with a clear error naming the layout, never an AttributeError",
      refs=["sglang#22204"], features=["layouts", "bad-input", "nvfp4", "deepseek-v3", "modelopt"],
      raises=(ValueError, "layout"))
def test_unusable_layout(engine, expected_error):
    model = engine.load(fixtures.cached("deepseek-v3", "modelopt-nvfp4", moe_inter=32), **TRTLLM)
    assert model.report()["transforms"] == []
    with expected_error as err:
        model.forward(IDS)
    assert "trtllm" in str(err.value), f"the error does not name the layout: {err.value}"
