"""Architecture-gated post-load hooks (UPSTREAM.md section 2, sglang#22543).

The DeepSeek-V3 + Quark MLA hook (split kv_b_proj into w_kc / w_vc) must run for DeepseekV3ForCausalLM
only, never for GLM-5 (which shares the MLA code path), and a config with empty or missing
`architectures` must neither run it nor crash.
"""

import pytest
import torch

from qcert import fixtures
from qcert.conformance import checkpoints as ck
from qcert.conformance.case import case
from qcert.kernels.tolerances import assert_close_rel

REFS = ["sglang#22543"]
HOOK = "deepseek_v3_mla_split_kv_b"
TINY = dict(layers=2, dense_layers=1, experts=4, top_k=2, act=None)


def _hooks(report):
    return {h["name"]: h for h in report["post_load_hooks"]}


@case("post-load/mla-hook-runs-for-deepseek-v3-quark", "the MLA post-load hook runs for DeepseekV3ForCausalLM + quark",
      refs=REFS, features=["post-load-hooks", "deepseek-v3", "quark", "mxfp4"])
def test_runs_for_deepseek(engine):
    report = engine.load(fixtures.cached("deepseek-v3", "quark-mxfp4", **TINY), device="cpu").report()
    assert _hooks(report)[HOOK]["ran"] is True


@case("post-load/mla-hook-never-for-glm-5", "the DeepSeek-V3 MLA hook does not run for GlmMoeDsaForCausalLM",
      refs=REFS, features=["post-load-hooks", "glm-5", "quark", "mxfp4"])
def test_not_for_glm(engine):
    report = engine.load(fixtures.cached("glm-5", "quark-mxfp4", **TINY), device="cpu").report()
    hook = _hooks(report)[HOOK]
    assert hook["ran"] is False and "GlmMoeDsaForCausalLM" in hook["reason"]


@case("post-load/mla-hook-not-for-other-methods", "the MLA hook does not run for an unquantized DeepSeek-V3",
      refs=REFS, features=["post-load-hooks", "deepseek-v3", "bf16"])
def test_not_for_bf16(engine):
    report = engine.load(fixtures.cached("deepseek-v3", "bf16", **TINY), device="cpu").report()
    assert _hooks(report)[HOOK]["ran"] is False


@case("post-load/empty-architectures-safe",
      "with `architectures` empty or missing (model_type picks the model) the hook is skipped with a reason, no exception",
      refs=REFS, features=["post-load-hooks", "deepseek-v3", "quark", "bad-input"])
@pytest.mark.parametrize("value", [[], None])
def test_empty_architectures(engine, tmp_path, value):
    path = ck.copy(fixtures.cached("deepseek-v3", "quark-mxfp4", **TINY), tmp_path / "ckpt")

    def change(cfg):
        if value is None:
            cfg.pop("architectures")
        else:
            cfg["architectures"] = value

    ck.edit_config(path, change)
    model = engine.load(path, device="cpu")
    hook = _hooks(model.report())[HOOK]
    assert hook["ran"] is False and "architectures" in hook["reason"]
    assert torch.isfinite(model.forward(torch.arange(6).reshape(1, 6))).all()


@case("post-load/forward-agrees-with-and-without-hook",
      "DeepSeek-V3 + quark with the absorbed MLA path (hook ran) equals the plain path on the dequantized weights",
      refs=REFS, features=["post-load-hooks", "deepseek-v3", "quark", "mxfp4", "numerics"])
def test_forward_agrees(engine):
    path = fixtures.cached("deepseek-v3", "quark-mxfp4", twin=True, **TINY)
    quant = engine.load(path, device="cpu", dtype="float32")
    plain = engine.load(fixtures.twin(path), device="cpu", dtype="float32")
    assert _hooks(quant.report())[HOOK]["ran"] and not _hooks(plain.report())[HOOK]["ran"]
    ids = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(0))
    assert_close_rel(quant.forward(ids), plain.forward(ids), "fp32", "logits with vs without the MLA hook")
