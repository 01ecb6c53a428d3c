"""Suite-side checkpoint helpers for cases: read what a checkpoint stores (independently of any
engine) and make deliberately broken copies. Cached fixtures are never modified in place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def stored(path: Path) -> dict[str, str]:
    """Tensor name -> safetensors dtype string, from the headers."""
    out = {}
    for f in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(f), "pt") as h:
            for name in h.keys():
                out[name] = str(h.get_slice(name).get_dtype())
    return out


def tensor(path: Path, name: str) -> torch.Tensor:
    for f in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(f), "pt") as h:
            if name in h.keys():
                return h.get_tensor(name)
    raise KeyError(name)


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_config(path: Path, change) -> Path:
    """Apply `change(config_dict)` to config.json in place (on a copy you own)."""
    p = Path(path) / "config.json"
    cfg = json.loads(p.read_text())
    change(cfg)
    p.write_text(json.dumps(cfg))
    return path


def rewrite_tensors(path: Path, change) -> Path:
    """Apply `change(tensors_dict)` to the single model file of a checkpoint you own."""
    files = sorted(Path(path).glob("*.safetensors"))
    assert len(files) == 1, f"rewrite_tensors needs an unsharded checkpoint, found {files}"
    tensors = load_file(str(files[0]))
    change(tensors)
    save_file(tensors, str(files[0]))
    return path


def truncate(path: Path, keep_fraction: float = 0.5) -> Path:
    f = sorted(Path(path).glob("*.safetensors"))[0]
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def short_forwards(model, path: Path, prefill: bool = False) -> list[torch.Tensor]:
    """Outputs of short forwards through a loaded model: decode-sized (1 x 8 tokens) and, with
    `prefill`, prefill-sized (4 x 24), whose kernels differ by size; a FLUX transformer takes one
    denoising step on a 4x4 latent instead. Token ids stay below 7, inside any vocabulary."""
    if model.report()["family"] == "flux":
        from qcert import fixtures

        config = json.loads((Path(path) / "config.json").read_text())
        return [model.forward(**fixtures.flux.inputs(config))]
    outs = [model.forward(torch.arange(8).reshape(1, 8) % 7)]
    if prefill:
        outs.append(model.forward(torch.arange(96).reshape(4, 24) % 7))
    return outs


FLOAT_DTYPES = {"BF16", "F16", "F32"}


def weight_is_float(dtypes: dict[str, str], module: str) -> bool:
    """True when the checkpoint stores `module.weight` unquantized."""
    return dtypes[f"{module}.weight"] in FLOAT_DTYPES


def scheme_mismatches(report: dict, dtypes: dict[str, str]) -> tuple[list[str], int]:
    """Compare each linear module's reported scheme with how the checkpoint stores its weights.

    A quantization-aware module must be "unquantized" iff every shard is stored in a float dtype; a
    module dequantized at load must be stored quantized; shards stored differently are a problem too.
    Returns (problems, number of modules checked)."""
    problems, checked = [], 0
    for m in report["modules"]:
        weights = [s for s in m["sources"] if s.endswith(".weight") and s in dtypes]
        if m["kind"] != "linear" or not weights:
            continue
        stored = {weight_is_float(dtypes, w.removesuffix(".weight")) for w in weights}
        found = [dtypes[w] for w in weights]
        checked += 1
        if len(stored) > 1:
            problems.append(f"{m['name']}: checkpoint shards stored differently: {dict(zip(weights, found))}")
        elif m["dequantized_at_load"]:
            if stored == {True}:
                problems.append(f"{m['name']}: dequantized at load but stored unquantized ({found})")
        elif (m["scheme"] == "unquantized") != (stored == {True}):
            problems.append(f"{m['name']}: engine scheme {m['scheme']!r} but the checkpoint stores {found} for "
                            f"{weights} (excluded_by={m['excluded_by']!r}, decided_by={m.get('decided_by')!r})")
    return problems, checked
