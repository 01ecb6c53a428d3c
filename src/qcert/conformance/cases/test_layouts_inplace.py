"""Kernel layouts applied in place (UPSTREAM.md section 4, sglang#22204): NVFP4 MoE experts in the
TRT-LLM FP4 layout, dense FP4 linears in the GEMV tile layout and FP4 MoE experts under the word map
keep their Parameters (same objects, same storages), hold exactly the permuted checkpoint values,
report each transform, and compute what the plain layout computes, before and after a weight update.
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


def assert_in_layout(plain_params, params, layers, fn, records, what, params_moved=None):
    """Each layer's weight and scales hold fn(plain weight, plain scales) and the moved parameters
    (default: both) are reported in place."""
    for layer in layers:
        w, s = fn(plain_params[f"{layer}.weight"], plain_params[f"{layer}.weight_scale"])
        assert torch.equal(raw(params[f"{layer}.weight"]), raw(w)), f"{layer}.weight is not in the {what} layout"
        assert torch.equal(raw(params[f"{layer}.weight_scale"]), raw(s)), f"{layer}.weight_scale not in the {what} layout"
        for p in params_moved or ("weight", "weight_scale"):
            rec = records.get(f"{layer}.{p}")
            assert rec and rec["in_place"] is True, f"{layer}.{p}: transform not reported in place: {rec}"


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
        assert_in_layout(pp, ps, [layer], fn, records, "TRT-LLM")
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


TILES = {"mxfp4_linear": "torch_tiles", "nvfp4_linear": "torch_tiles"}


def dense_fp4_layers(params):
    return sorted({n.rsplit(".", 1)[0] for n in params if n.endswith(".weight_scale") and ".experts" not in n})


def check_in_place_and_after_update(engine, path, new, backends, layers_of, fn, what, op, moved=None):
    """Load `path` with `backends` (a backend consuming fn's layout): its layers hold fn of the plain
    load, reported in place, forward equals the plain load's; after update_weights_from_disk(new)
    they hold fn of the NEW checkpoint in the same storages and forward follows the new weights.
    moved: the parameters the transform rewrites and reports (default weight and scales)."""
    plain, laid = engine.load(path), engine.load(path, backends=backends)
    pp, pl = plain.parameters(), laid.parameters()
    records = {r["param"]: r for r in laid.report()["transforms"] if r["transform"] == what}
    layers = layers_of(pl)
    assert layers, f"fixture has no layers for the {what} layout"
    assert_in_layout(pp, pl, layers, fn, records, what, moved)
    assert torch.equal(plain.forward(IDS), laid.forward(IDS))
    assert laid.report()["backends"][op] == backends[op]
    ptrs = {n: p.data_ptr() for n, p in pl.items()}
    laid.update_weights_from_disk(new)
    pn, pl = engine.load(new).parameters(), laid.parameters()
    for layer in layers:
        w, _ = fn(pn[f"{layer}.weight"], pn[f"{layer}.weight_scale"])
        assert torch.equal(raw(pl[f"{layer}.weight"]), raw(w)), f"{layer}.weight: stale or not in {what} after update"
        assert pl[f"{layer}.weight"].data_ptr() == ptrs[f"{layer}.weight"], f"{layer}.weight: storage replaced"
    assert torch.equal(laid.forward(IDS), engine.load(new).forward(IDS))


@case("layouts/fp4-tiles-in-place",
      "dense FP4 linears whose backend reads the GEMV tile layout hold exactly the tiled checkpoint bytes in "
      "their own parameters, reported in place, and compute what the plain layout computes; after "
      "update_weights_from_disk they hold the tiles of the NEW checkpoint in the same storages",
      features=["layouts", "weight-update", "mxfp4", "nvfp4", "llama", "quark", "compressed-tensors"])
@pytest.mark.parametrize("fmt", ["quark-mxfp4", "ct-mxfp4"])
def test_fp4_tiles_in_place(engine, fmt):
    check_in_place_and_after_update(engine, fixtures.cached("llama", fmt), fixtures.cached("llama", fmt, seed=1), TILES,
                                    dense_fp4_layers, layouts.fp4_tiles, "fp4_tiles", "mxfp4_linear")


WORDS = {"mxfp4_moe": "torch_words", "nvfp4_moe": "torch_words"}


@case("layouts/fp4-words-in-place",
      "FP4 MoE experts whose backend reads the word map hold exactly the mapped checkpoint bytes in their own "
      "parameters, reported in place, and compute what the plain layout computes; after "
      "update_weights_from_disk they hold the map of the NEW checkpoint in the same storages",
      features=["layouts", "weight-update", "mxfp4", "nvfp4", "deepseek-v3", "quark", "modelopt"])
@pytest.mark.parametrize("fmt,op", [("quark-mxfp4", "mxfp4_moe"), ("modelopt-nvfp4", "nvfp4_moe")])
def test_fp4_words_in_place(engine, fmt, op):
    check_in_place_and_after_update(engine, fixtures.cached("deepseek-v3", fmt),
                                    fixtures.cached("deepseek-v3", fmt, seed=1), WORDS, expert_layers,
                                    layouts.fp4_words, "fp4_words", op, moved=("weight",))
