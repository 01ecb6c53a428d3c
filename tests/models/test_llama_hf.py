"""qcert's Llama forward equals transformers' LlamaForCausalLM on the same BF16 checkpoint (float32)."""

import torch
from safetensors.torch import load_file

from qcert import fixtures
from qcert.engine import loader


def test_llama_matches_transformers():
    transformers = __import__("transformers")
    path = fixtures.cached("llama", "bf16")
    cfg = transformers.LlamaConfig(**{k: v for k, v in fixtures.family_module("llama").config("llama").items()
                                      if k not in ("architectures", "torch_dtype")})
    hf = transformers.LlamaForCausalLM(cfg).float().eval()
    missing, unexpected = hf.load_state_dict({k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()},
                                             strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3]])
    with torch.no_grad():
        ref = hf(ids).logits.float()
    out = loader.load(path, device="cpu", dtype="float32").forward(ids)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
