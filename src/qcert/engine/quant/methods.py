"""How a quant-aware layer computes with its scheme: kernel ops per format, through the registry.

Layers never call a backend directly. The backend each op used is recorded on the layer
(`layer.backends_used`) so the load report can name it.
"""

from __future__ import annotations

import torch

from qcert.kernels import registry

from .scheme import Scheme


def call_op(layer, op: str, *args, **kwargs):
    requested = getattr(layer, "backend_requests", {}).get(op)
    ctx = registry.OpContext.from_tensor(args[0])
    backend, out = registry.run(op, ctx, args, kwargs, requested, layout=getattr(layer, "layout", "plain"))
    layer.__dict__.setdefault("backends_used", {})[op] = backend.name
    return out


def per_row(layer, values: torch.Tensor) -> torch.Tensor:
    """Per-shard scalars of a fused layer as one value per output row."""
    counts = torch.tensor(layer.rows, device=values.device)
    return values.float().repeat_interleave(counts, dim=-1)


def linear_forward(layer, x: torch.Tensor) -> torch.Tensor:
    s: Scheme = layer.scheme
    bias = layer.bias
    if s.format == "unquantized":
        return call_op(layer, "bf16_linear", x, layer.weight, bias)
    if s.format == "mxfp4":
        return call_op(layer, "mxfp4_linear", x, layer.weight, layer.weight_scale, bias,
                       act_qdq=s.activation == "mxfp4")
    if s.format == "nvfp4":
        return call_op(layer, "nvfp4_linear", x, layer.weight, layer.weight_scale,
                       per_row(layer, layer.weight_scale_2), bias,
                       input_scale=layer.input_scale.max() if s.activation == "nvfp4" else None)
    # fp8: per-tensor scales of fused shards become per-row scales (shards keep their own scale)
    w_scale = layer.weight_scale.float().reshape(-1) if s.strategy == "channel" else per_row(layer, layer.weight_scale)
    input_scale = layer.input_scale.max() if s.activation == "fp8" else None
    if s.activation == "fp8_dynamic":  # the kwarg only when set: backends without it stay callable
        return call_op(layer, "fp8_linear", x, layer.weight, w_scale, bias, act_dynamic=True)
    return call_op(layer, "fp8_linear", x, layer.weight, w_scale, bias, input_scale=input_scale)


def dequantize(scheme: Scheme, t: dict[str, torch.Tensor]) -> torch.Tensor:
    """A quantized weight (engine-side tensors by param name) as float32 [N, K]."""
    f = scheme.format
    if f == "unquantized":
        return t["weight"].float()
    if f == "mxfp4":
        from qcert.kernels.mxfp4 import dequantize_mxfp4

        return dequantize_mxfp4(t["weight"], t["weight_scale"].view(torch.uint8))
    if f == "nvfp4":
        from qcert.kernels.nvfp4 import dequantize_nvfp4

        return dequantize_nvfp4(t["weight"], t["weight_scale"], t["weight_scale_2"].float().reshape(()))
    from qcert.kernels.fp8 import dequantize_fp8

    scale = t["weight_scale"].float()
    return dequantize_fp8(t["weight"], scale.reshape(()) if scale.numel() == 1 else scale.reshape(-1, 1))


# --- post-load layout transforms ------------------------------------------------------------------
# name -> (applies(layer) -> bool, forward(layer) -> record dict, inverse(layer)). A forward transform
# writes into the SAME parameters (same storage when shape and dtype allow) and sets `layer.layout`
# to its name; `applies` must be False for a layer already in that layout.
LAYOUTS: dict = {}


def backend_layout(layer, op: str) -> str | None:
    """The layout that op's backend for this layer consumes (as it will be selected at forward, the
    layer's backend request included), or None when a requested backend cannot run here (the layer
    stays plain and forward names the problem). Selected for the activations' dtype, as forward
    selects: the packed weight's own (uint8) fails every kernel's dtype check."""
    ctx = registry.OpContext.from_tensor(layer.weight)
    ctx.dtype = layer.compute_dtype
    try:
        return registry.select(op, ctx, getattr(layer, "backend_requests", {}).get(op), layout=registry.ANY_LAYOUT).layout
    except registry.BackendUnavailable:
        return None


def post_load(model) -> list[dict]:
    done = []
    for name, module in model.named_modules():
        for applies, forward, _inverse in LAYOUTS.values():
            if applies(module):
                # a transform returns one record, or a list of per-parameter records
                rec = forward(module)
                for r in rec if isinstance(rec, list) else [rec]:
                    done.append({**r, "param": f"{name}.{r['param']}" if "param" in r else name})
    return done


def to_plain_layout(model, modules: set[str] | None = None) -> None:
    for name, module in model.named_modules():
        layout = getattr(module, "layout", "plain")
        if layout != "plain" and (modules is None or name in modules):
            LAYOUTS[layout][2](module)


from . import fp4_tiles_layout, fp4_words_layout, nvfp4_layout  # noqa: E402,F401  (register the layouts)
