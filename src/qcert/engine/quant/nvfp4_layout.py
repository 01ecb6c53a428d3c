"""The TRT-LLM FP4 MoE layout as an IN-PLACE post-load transform (UPSTREAM.md section 4, sglang#22204).

Stacked NVFP4 experts (w13 = [gate; up], w2) are permuted for the kernel when the nvfp4_moe backend
that will run consumes the "trtllm" layout. The permuted values are copied back into the SAME
Parameters (same storage), so update_weights_from_disk can write the next checkpoint into them and
rerun the transform; `layer.layout` records the state and forward keys on it (never on side
attributes). The inverse restores the plain layout in place.

LAYOUTS entries are lambdas so mutants can patch this module's functions at call time.
"""

from __future__ import annotations

import torch

from qcert.kernels import layouts

from ..layers import QLinear
from . import methods

NAME = "trtllm"
OP = "nvfp4_moe"


def _h_i(layer: QLinear) -> tuple[int, int]:
    return (layer.k, layer.rows[0]) if len(layer.rows) == 2 else (layer.rows[0], layer.k)


def shape_ok(layer: QLinear) -> bool:
    """32-row shuffle and 128x4 scale interleave for both w13 [2I, H] and w2 [H, I]."""
    h, i = _h_i(layer)
    return (2 * i) % 128 == 0 and h % 128 == 0 and (h // 16) % 4 == 0 and (i // 16) % 4 == 0


def wants_layout(layer) -> bool:
    """Whether the nvfp4_moe backend this layer will run with consumes the trtllm layout."""
    return methods.backend_layout(layer, OP) == NAME


def applies(layer) -> bool:
    return (isinstance(layer, QLinear) and layer.stacked and layer.scheme.format == "nvfp4"
            and layer.layout == "plain" and len(layer.rows) in (1, 2) and shape_ok(layer) and wants_layout(layer))


def _fns(layer):
    if len(layer.rows) == 2:
        return "trtllm_fp4_w13", layouts.trtllm_fp4_w13_layout, layouts.trtllm_fp4_w13_layout_inverse
    return "trtllm_fp4_w2", layouts.trtllm_fp4_w2_layout, layouts.trtllm_fp4_w2_layout_inverse


def _write_back(layer, fn) -> bool:
    """Permute weight + block scales and copy into the same storages, expert by expert (the layout
    works per expert), so the temporaries are one expert's, not the whole stacked layer's; True when
    in place."""
    weight, scale = layer.weight.data, layer.weight_scale.data
    for e in range(weight.shape[0]):
        w, s = fn(weight[e], scale[e])
        if w.shape != weight[e].shape or w.dtype != weight.dtype or s.shape != scale[e].shape or s.dtype != scale.dtype:
            break  # a layout that pads: not expressible in place
        weight[e].copy_(w)
        scale[e].copy_(s)
    else:
        return True
    if e:
        raise RuntimeError(f"layout {fn.__name__}: expert {e} changed shape after earlier experts were permuted")
    w, s = fn(weight, scale)  # the Parameter objects stay, their data is rebound
    layer.weight.data, layer.weight_scale.data = w, s
    return False


def transform(layer) -> list[dict]:
    name, fwd, _ = _fns(layer)
    in_place = _write_back(layer, fwd)
    layer.layout = NAME
    return [{"param": p, "transform": name, "in_place": in_place} for p in ("weight", "weight_scale")]


def inverse(layer) -> None:
    _, _, inv = _fns(layer)
    _write_back(layer, inv)
    layer.layout = "plain"


def kernel_tensors(layer) -> tuple[torch.Tensor, torch.Tensor]:
    """The tensors the MoE kernel reads: always the layer's own parameters."""
    return layer.weight, layer.weight_scale


def expert_global_scales(layer: QLinear) -> torch.Tensor:
    """One NVFP4 global scale per expert [E], as MoE kernels take it: shard 0's. The shards of an
    expert agree (producers share one across gate/up, FORMATS.md); loader.check_expert_global_scales
    refuses checkpoints where they do not, at load and update, so forward reads no value on the host."""
    return layer.weight_scale_2.float()[:, 0]


def moe_forward(w13: QLinear, w2: QLinear, x: torch.Tensor, weights, ids) -> torch.Tensor:
    """NVFP4 experts: the backend is selected for w13's layout flag (see methods.call_op; run_experts
    has checked that w2 is in the same layout)."""
    a, a_s = kernel_tensors(w13)
    b, b_s = kernel_tensors(w2)
    act = {}
    if w13.scheme.activation == "nvfp4":
        # W4A4 like the linear path. Activations are quantized before dispatch, so one global scale
        # serves every expert: the max over experts and shards (what sglang does for NVFP4/FP8 MoE)
        act = {"w13_input_scale": w13.input_scale.max(), "w2_input_scale": w2.input_scale.max()}
    return methods.call_op(w13, OP, x, a, a_s, expert_global_scales(w13), b, b_s, expert_global_scales(w2),
                           weights, ids, **act)


methods.LAYOUTS[NAME] = (lambda m: applies(m), lambda m: transform(m), lambda m: inverse(m))
