"""Forward numbers: a quantized checkpoint's logits against a float32 checkpoint holding exactly its
dequantized weights (the fixture's twin). Weight-only (W4A16) must agree to fp32 rounding; with MXFP4
activation quantization (W4A4) the activation rounding bounds the error."""

import pytest
import torch

from qcert import fixtures
from qcert.conformance.case import case
from qcert.kernels import registry
from qcert.kernels.tolerances import GPU_FORWARD_BOUNDS, assert_close_rel

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


# decode-sized (the GEMV and the MoE's grouped GEMV), a small batch, and prefill (the general GEMM and
# grouped kernel: more than 64 token-expert rows)
GPU_INPUTS = [IDS[:1, :5], IDS, torch.randint(0, 256, (4, 24), generator=torch.Generator().manual_seed(8))]
# (family, format, fixture params, bound): every fp4/fp8 op kind on its default GPU backends; MoE
# families for the grouped kernels and the word map, dense linears for the tile layout
GPU_SUBJECTS = [
    ("deepseek-v3", "quark-mxfp4", {"act": None}, "fp4"),
    ("deepseek-v3", "quark-mxfp4", {}, "fp4"),
    ("glm-5", "quark-mxfp4", {}, "fp4"),  # DSA indexer (added after the 2026-12-07 GPU run)
    ("kimi-k2.5", "quark-mxfp4", {}, "fp4"),  # the multimodal wrapper (likewise)
    ("qwen3.5-moe", "quark-mxfp4", {}, "fp4"),
    ("deepseek-v3", "modelopt-nvfp4", {}, "fp4"),
    ("qwen3-moe", "ct-nvfp4", {}, "fp4"),
    ("llama", "ct-mxfp4", {}, "fp4"),
    ("deepseek-v3", "modelopt-fp8", {}, "fp8"),
]


@case("numerics/gpu-forward-matches-cpu",
      "on the GPU every quantized op runs a GPU kernel (never a silent fallback to the torch reference) and the "
      "logits match the same checkpoint's on the CPU",
      refs=["sglang#22543"], features=["numerics", "kernels", "triton", "flashinfer", "layouts", "mxfp4", "nvfp4",
                                       "fp8", "quark", "modelopt", "compressed-tensors", "deepseek-v3", "glm-5",
                                       "qwen-moe", "llama"], hardware="gpu")
@pytest.mark.parametrize("family,fmt,params,bound", GPU_SUBJECTS,
                         ids=[f"{f}-{m}{'-w4a16' if p.get('act', 1) is None else ''}" for f, m, p, _ in GPU_SUBJECTS])
def test_gpu_forward(engine, family, fmt, params, bound):
    path = fixtures.cached(family, fmt, **params)
    gpu = engine.load(path, device="cuda")  # bf16, the backends the registry picks on this GPU
    outs = [gpu.forward(ids) for ids in GPU_INPUTS]
    report = gpu.report()
    assert report["device"].startswith("cuda"), f"loaded on {report['device']}"
    assert any(registry.has_kernel(op) for op in report["backends"]), (
        f"the forward ran no op that has a kernel: {report['backends']}")
    fallback = registry.reference_fallbacks(report["backends"])
    assert not fallback, f"the torch reference ran on the GPU where a kernel is registered: {fallback}"
    cpu = engine.load(path, device="cpu")  # the same dtype (bf16): the reference rounds where the kernels do
    for ids, out in zip(GPU_INPUTS, outs):
        assert_close_rel(out, cpu.forward(ids), "bf16", f"{family} {fmt} GPU vs CPU logits, ids {tuple(ids.shape)}",
                         bound=GPU_FORWARD_BOUNDS[bound])
