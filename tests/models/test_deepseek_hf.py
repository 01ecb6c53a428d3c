"""The engine's BF16 forward of each DeepSeek-family architecture against Hugging Face transformers'
own implementation on the same weights (float32 both sides, eager attention).

transformers ships DeepseekV3 and GlmMoeDsa; Kimi-K2.5's text model is a DeepSeek-V3, so its
`language_model.` weights are compared against transformers' DeepseekV3ForCausalLM (transformers'
Kimi_K25 class expects a different checkpoint layout than the published one)."""

import pytest
import torch

from qcert import fixtures
from qcert.engine import load

transformers = pytest.importorskip("transformers")

IDS = torch.randint(0, 256, (2, 11), generator=torch.Generator().manual_seed(3))


def _hf_logits(path):
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        return model.eval()(IDS).logits


@pytest.mark.parametrize("family", ["deepseek-v3", "glm-5"])
def test_matches_transformers(family):
    path = fixtures.cached(family, "bf16", layers=3, dense_layers=1, experts=8)
    ours = load(path, device="cpu", dtype="float32").forward(IDS)
    ref = _hf_logits(path)
    assert ((ours - ref).norm() / ref.norm()).item() < 1e-5


def test_kimi_text_model_matches_transformers_deepseek_v3(tmp_path):
    from safetensors.torch import load_file, save_file

    from qcert.fixtures.writer import write_checkpoint

    kimi = fixtures.cached("kimi-k2.5", "bf16", layers=2, dense_layers=1, experts=8)
    import json

    cfg = json.loads((kimi / "config.json").read_text())["text_config"]
    tensors = {k.removeprefix("language_model."): v for k, v in load_file(str(kimi / "model.safetensors")).items()
               if k.startswith("language_model.")}
    text = write_checkpoint(tmp_path / "text", cfg, tensors)
    ours = load(kimi, device="cpu", dtype="float32").forward(IDS)
    ref = _hf_logits(text)
    assert ((ours - ref).norm() / ref.norm()).item() < 1e-5


def test_mismatch_is_detected():
    # The comparison can fail: a perturbed weight moves the logits far beyond the bound.
    path = fixtures.cached("deepseek-v3", "bf16", layers=2, dense_layers=1, experts=8)
    model = load(path, device="cpu", dtype="float32")
    ref = _hf_logits(path)
    model.parameters()["model.layers.0.self_attn.o_proj.weight"].data.mul_(1.5)
    ours = model.forward(IDS)
    assert ((ours - ref).norm() / ref.norm()).item() > 1e-3
