"""Forward numbers: a quantized checkpoint's logits against a float32 checkpoint holding exactly its
dequantized weights (the fixture's twin). Weight-only (W4A16) must agree to fp32 rounding; with MXFP4
activation quantization (W4A4) the activation rounding bounds the error."""

import pytest
import torch

from qcert import fixtures
from qcert.conformance.case import case
from qcert.kernels.tolerances import assert_close_rel

# W4A4 forward vs a W4A16 reference: fp4 activation rounding through a few tiny layers measures
# 0.30-0.42 relative error on these fixtures; a wrong nibble order or scale measures > 1.
W4A4_BOUND = 0.6
FAMILIES = ["deepseek-v3", "glm-5", "kimi-k2.5"]


def _pair(engine, family, act):
    path = fixtures.cached(family, "quark-mxfp4", twin=True, act=act, layers=2, dense_layers=1, experts=4, top_k=2)
    return (engine.load(path, device="cpu", dtype="float32"),
            engine.load(fixtures.twin(path), device="cpu", dtype="float32"))


IDS = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(7))


@case("numerics/quark-mxfp4-w4a16-matches-dequantized",
      "a Quark MXFP4 weight-only checkpoint's logits equal those of its dequantized float weights",
      features=["numerics", "quark", "mxfp4", "deepseek-v3", "glm-5", "kimi-k2.5"])
@pytest.mark.parametrize("family", FAMILIES)
def test_w4a16(engine, family):
    quant, ref = _pair(engine, family, None)
    assert_close_rel(quant.forward(IDS), ref.forward(IDS), "fp32", f"{family} W4A16 logits")


@case("numerics/quark-mxfp4-w4a4-close-to-dequantized",
      "with MXFP4 activations (input_tensors fp4) logits stay within the activation-rounding bound",
      features=["numerics", "quark", "mxfp4", "deepseek-v3", "glm-5", "kimi-k2.5"])
@pytest.mark.parametrize("family", FAMILIES)
def test_w4a4(engine, family):
    quant, ref = _pair(engine, family, "fp4")
    assert_close_rel(quant.forward(IDS), ref.forward(IDS), "fp32", f"{family} W4A4 logits", bound=W4A4_BOUND)


@case("numerics/generate-greedy", "greedy generate appends argmax tokens of forward",
      features=["numerics", "deepseek-v3", "bf16"])
def test_generate(engine):
    model = engine.load(fixtures.cached("deepseek-v3", "bf16"), device="cpu", dtype="float32")
    out = model.generate(IDS[:1, :4], max_new_tokens=3)
    assert out.shape == (1, 7) and torch.equal(out[:, :4], IDS[:1, :4])
    for t in range(4, 7):
        assert out[0, t] == model.forward(out[:, :t])[0, -1].argmax()
