"""qcert's Qwen MoE forward against Hugging Face transformers on the same tiny BF16 checkpoint.

Qwen2-MoE and Qwen3-MoE load the fixture directory with from_pretrained (per-expert checkpoint names
are merged by transformers' conversion mapping). transformers has no per-expert conversion for
Qwen3.5-MoE (its own checkpoints store experts stacked), so that test stacks the experts itself and
loads the state dict into Qwen3_5MoeForConditionalGeneration.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from qcert import fixtures
from qcert.engine import load

transformers = pytest.importorskip("transformers")
IDS = torch.tensor([[3, 17, 42, 99, 5, 200, 7, 11, 64, 130, 2, 9]])


def _ours(path, fusion="off"):
    return load(path, device="cpu", dtype="float32", shared_expert_fusion=fusion).forward(IDS)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("family", ["qwen2-moe", "qwen3-moe"])
def test_matches_transformers(family):
    # Layer 0 MoE, layer 1 dense (mlp_only_layers): both MLP kinds, as few layers as that takes.
    path = fixtures.cached(family, "bf16", mlp_only_layers=(1,), layers=2, experts=4, norm_topk=family == "qwen3-moe")
    hf = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        ref = hf(IDS).logits
    assert _rel(_ours(path, "off"), ref) < 1e-5  # measured ~2.5e-7
    assert _rel(_ours(path, "force"), ref) < 1e-5


def test_qwen35_matches_transformers():
    path = fixtures.cached("qwen3.5-moe", "bf16", layers=2, experts=4)  # one linear-, one full-attention layer
    cfg = json.loads((path / "config.json").read_text())
    tc = cfg["text_config"]
    hf_cfg = transformers.Qwen3_5MoeConfig(text_config={k: v for k, v in tc.items() if k != "model_type"},
                                           vision_config=cfg["vision_config"])
    hf_cfg.text_config._attn_implementation = hf_cfg._attn_implementation = "eager"
    model = transformers.Qwen3_5MoeForConditionalGeneration(hf_cfg).float().eval()
    sd = {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()
          if not k.startswith(("mtp.", "model.visual."))}
    for i in range(tc["num_hidden_layers"]):
        e = f"model.language_model.layers.{i}.mlp.experts"
        n = tc["num_experts"]
        gate_up = [torch.cat([sd.pop(f"{e}.{j}.gate_proj.weight"), sd.pop(f"{e}.{j}.up_proj.weight")]) for j in range(n)]
        sd[f"{e}.gate_up_proj"] = torch.stack(gate_up)
        sd[f"{e}.down_proj"] = torch.stack([sd.pop(f"{e}.{j}.down_proj.weight") for j in range(n)])
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.startswith("model.visual.") for k in missing), (missing, unexpected)
    with torch.no_grad():
        ref = model(input_ids=IDS).logits
    assert _rel(_ours(path), ref) < 1e-4
    assert _rel(_ours(path, "force"), ref) < 1e-4
