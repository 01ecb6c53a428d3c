"""MoE experts in the ModelOpt / compressed-tensors formats compute like the linear path: NVFP4
experts are W4A4 (activation global scales = input scales), FP8_DYNAMIC experts (per-channel weight
scales [E, rows, 1]) quantize activations per token at run time. Checked against the dequantized
float twin with only the experts quantized, so the error is the experts' activation rounding alone:
above the weight-only floor and within the activation-QDQ bound (kernels/tolerances.py)."""

import pytest
import torch

from qcert import fixtures
from qcert.conformance.case import case
from qcert.kernels.tolerances import ACT_QDQ_FLOOR, ACT_QDQ_FORWARD_BOUNDS, rel_error

IDS = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(7))
# everything but the routed experts stays BF16 (exact names / globs for ModelOpt, regexes for CT)
EXPERTS_ONLY = {
    "modelopt": ["lm_head", "*self_attn*", "*shared_expert*", "*.mlp.gate", "*.mlp.gate_proj", "*.mlp.up_proj",
                 "*.mlp.down_proj"],
    "ct": ["lm_head", r"re:.*self_attn", r"re:.*shared_expert", r"re:.*\.mlp\.(gate|gate_proj|up_proj|down_proj)$"],
}
SMALL = {"deepseek-v3": {"experts": 4}, "qwen3-moe": {"experts": 4, "hidden": 64}}
CASES = [("deepseek-v3", "modelopt-nvfp4"), ("qwen3-moe", "ct-nvfp4"),
         ("deepseek-v3", "ct-fp8-dynamic"), ("qwen3-moe", "ct-fp8-dynamic")]


def experts_only(family: str, fmt: str) -> str:
    exclude = EXPERTS_ONLY["modelopt" if fmt.startswith("modelopt") else "ct"]
    return fixtures.cached(family, fmt, twin=True, exclude=exclude, **SMALL[family])


@case("moe-formats/activations-quantized-like-linears",
      "NVFP4 MoE experts quantize activations with their input scales (W4A4) and FP8_DYNAMIC experts with "
      "per-channel weight scales quantize activations per token, so logits differ from the dequantized twin "
      "by activation rounding only: above the weight-only floor, within the activation-QDQ bound",
      refs=["sglang#22204"], features=["numerics", "nvfp4", "fp8", "modelopt", "compressed-tensors",
                                       "deepseek-v3", "qwen-moe"])
@pytest.mark.parametrize("family,fmt", CASES, ids=[f"{f}-{m}" for f, m in CASES])
def test_moe_activations(engine, family, fmt):
    path = experts_only(family, fmt)
    quant = engine.load(path, dtype="float32")
    quantized = {m["scheme"] for m in quant.report()["modules"] if "expert" in m["name"]} - {"unquantized"}
    assert quantized, "fixture has no quantized experts"
    ref = engine.load(fixtures.twin(path), dtype="float32")
    err = rel_error(quant.forward(IDS), ref.forward(IDS))
    key = "nvfp4" if "nvfp4" in fmt else "fp8"
    assert err > ACT_QDQ_FLOOR, (f"{family} {fmt}: logits equal the weight-only twin (rel. error {err:.2e}): "
                                 f"the experts' activations were not quantized ({sorted(quantized)})")
    assert err <= ACT_QDQ_FORWARD_BOUNDS[key], f"{family} {fmt}: rel. error {err:.3f} > {ACT_QDQ_FORWARD_BOUNDS[key]}"
