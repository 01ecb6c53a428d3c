"""Certification checks for one checkpoint (`qcert certify PATH` runs this module on PATH).

Without --qcert-checkpoint they run on built-in fixtures. They read only what any engine reports
(the load report, parameters) and the checkpoint's own headers.
"""

import re

import pytest
import torch

from qcert import fixtures
from qcert.conformance import checkpoints as ck
from qcert.conformance.case import case
from qcert.kernels import registry

# Built-in subjects: tiny fixtures, plus header-only replicas with real widths and expert counts
# (4 layers keep CI fast; `qcert fixtures replica` writes the full 61-layer ones).
BUILTIN = [("deepseek-v3", "quark-mxfp4"), ("kimi-k2.5", "quark-mxfp4"), ("glm-5", "bf16"),
           ("deepseek-v3", "replica"), ("kimi-k2.5", "replica"), ("glm-5", "replica-bf16-shared")]
# GLM-5 with its shared experts kept in BF16 beside MXFP4 routed experts (fusion must stay off).
BF16_SHARED = ["lm_head"] + [f"model.layers.{i}.mlp.{m}" for i in range(3, 4)
                             for m in ("gate", "shared_experts.gate_proj", "shared_experts.up_proj",
                                       "shared_experts.down_proj")]
CPU_FORWARD_LIMIT = 2 * 1024**3  # bytes of weights a CPU forward in float32 stays practical for
UNEXPECTED = "no engine parameter claims this tensor"


# The GPU cases' built-in subjects: the fixtures with data (the replicas hold only zeros: loading
# their 15-32 GB would time the disk, not the engine).
BUILTIN_GPU = [(f, q) for f, q in BUILTIN if not q.startswith("replica")]


def pytest_generate_tests(metafunc):
    if "checkpoint" not in metafunc.fixturenames:
        return
    given = metafunc.config.getoption("qcert_checkpoint")
    subjects = BUILTIN_GPU if metafunc.function.__name__.startswith("test_gpu_") else BUILTIN
    if given:
        metafunc.parametrize("checkpoint", [given], ids=["given"], indirect=True)
    else:
        metafunc.parametrize("checkpoint", subjects, ids=[f"{f}-{q}" for f, q in subjects], indirect=True)


@pytest.fixture
def checkpoint(request):
    if isinstance(request.param, tuple):
        family, fmt = request.param
        if fmt == "replica":
            return fixtures.cached_replica(family, layers=4)
        if fmt == "replica-bf16-shared":
            return fixtures.cached_replica(family, layers=4, exclude=BF16_SHARED)
        return fixtures.cached(family, fmt, layers=2, dense_layers=1, experts=4, top_k=2)
    return request.param


def _size(path) -> int:
    return sum(f.stat().st_size for f in ck.Path(path).glob("*.safetensors"))


def _skip_if_too_big(checkpoint, device: str) -> None:
    """CPU: a float32 forward past CPU_FORWARD_LIMIT is impractical. GPU: the weights must fit the
    device's free memory with room for activations and the layout transforms' copies."""
    size = _size(checkpoint)
    if device == "cpu":
        if size > CPU_FORWARD_LIMIT:
            pytest.skip(f"not applicable on CPU: {size / 1e9:.1f} GB of weights exceed the CPU forward limit "
                        f"({CPU_FORWARD_LIMIT / 1e9:.1f} GB); static checks only (certify --hardware cuda loads it "
                        f"on a GPU)")
        return
    free, _ = torch.cuda.mem_get_info()
    if size > 0.85 * free:
        pytest.skip(f"not applicable on this GPU: {size / 1e9:.1f} GB of weights, {free / 1e9:.1f} GB free")


@case("certify/plan-complete", "every checkpoint tensor is claimed or skipped with a reason, and none is missing",
      features=["certify"])
def test_plan_complete(engine, checkpoint):
    report = engine.plan(checkpoint, device="cpu")
    assert report["missing"] == [], f"missing tensors: {report['missing'][:5]}"
    stray = [u["tensor"] for u in report["unclaimed"] if u["reason"] == UNEXPECTED]
    assert stray == [], f"tensors no module claims: {stray[:5]}"


@case("certify/schemes-match-storage",
      "each quantization-aware module's scheme agrees with how the checkpoint stores its weights",
      features=["certify", "exclude-remap"])
def test_schemes_match_storage(engine, checkpoint):
    problems, _ = ck.scheme_mismatches(engine.plan(checkpoint, device="cpu"), ck.stored(checkpoint))
    assert not problems, "; ".join(problems[:5])


@case("certify/exclude-entries-all-match", "every exclude/ignore entry of the config matches at least one module",
      features=["certify", "exclude-remap"])
def test_exclude_entries_match(engine, checkpoint):
    report = engine.plan(checkpoint, device="cpu")
    if report["quant_method"] is None:
        pytest.skip("not applicable: the checkpoint has no quantization config")
    assert report["unmatched_exclude_entries"] == [], (
        f"entries matching no module (typo, glob in an exact/regex list, or renamed module): "
        f"{report['unmatched_exclude_entries']}")


@case("certify/fused-shared-expert-stored-alike",
      "when the shared expert is fused into the routed experts, it is stored like the routed experts",
      features=["certify", "shared-expert-fusion"])
def test_fusion_sound(engine, checkpoint):
    report = engine.plan(checkpoint, device="cpu")
    if not report["fusion"]["shared_experts"]:
        pytest.skip(f"not applicable: shared-expert fusion is off ({report['fusion']['reason']})")
    dtypes = ck.stored(checkpoint)
    for name, dtype in dtypes.items():
        m = re.match(r"(.*\.mlp\.)shared_experts?\.gate_proj\.weight$", name)
        if m:
            routed = dtypes.get(f"{m.group(1)}experts.0.gate_proj.weight")
            assert routed == dtype, f"{name} is {dtype} but the routed experts are {routed}"


def check_loads_and_runs(engine, checkpoint, device: str) -> dict:
    """Load on `device` (float32 on the CPU, the engine's bf16 on a GPU), run a short forward (a
    decode- and a prefill-sized one on a GPU, whose kernels differ by size); every output finite.
    Returns the load report."""
    _skip_if_too_big(checkpoint, device)
    model = engine.load(checkpoint, device=device, **({"dtype": "float32"} if device == "cpu" else {}))
    for out in ck.short_forwards(model, checkpoint, prefill=device != "cpu"):
        bad = int((~torch.isfinite(out)).sum())
        assert bad == 0, f"forward output {tuple(out.shape)} has {bad} non-finite values of {out.numel()}"
    return model.report()


def check_reload_identity(engine, checkpoint, device: str) -> None:
    _skip_if_too_big(checkpoint, device)
    model = engine.load(checkpoint, device=device)
    # the snapshot lives on the host: a second copy on the GPU would halve the checkpoints that fit
    before = {n: (p.data_ptr(), p.detach().to("cpu", copy=True)) for n, p in model.parameters().items()}
    model.update_weights_from_disk(checkpoint)
    after = model.parameters()
    for n, (ptr, value) in before.items():
        assert after[n].data_ptr() == ptr, f"{n} moved to new storage"
        assert torch.equal(after[n].cpu().view(torch.uint8), value.view(torch.uint8)), f"{n} changed"


@case("certify/loads-and-runs", "the checkpoint loads and a short forward is finite",
      features=["certify", "numerics"])
def test_loads_and_runs(engine, checkpoint):
    check_loads_and_runs(engine, checkpoint, "cpu")


@case("certify/reload-same-checkpoint-is-identity",
      "update_weights_from_disk with the same checkpoint leaves every parameter bit-identical, in place",
      features=["certify", "weight-update"])
def test_reload_identity(engine, checkpoint):
    check_reload_identity(engine, checkpoint, "cpu")


@case("certify/gpu-loads-and-runs",
      "on the GPU the checkpoint loads, every quantized op runs a GPU kernel (never the torch reference where a "
      "kernel is registered) and decode- and prefill-sized forwards are finite",
      refs=["sglang#22543"], features=["certify", "numerics", "kernels"], hardware="gpu")
def test_gpu_loads_and_runs(engine, checkpoint):
    report = check_loads_and_runs(engine, checkpoint, "cuda")
    fallback = registry.reference_fallbacks(report["backends"])
    assert not fallback, f"the torch reference ran on the GPU where a kernel is registered: {fallback}"


@case("certify/gpu-reload-same-checkpoint-is-identity",
      "on the GPU, update_weights_from_disk with the same checkpoint leaves every parameter bit-identical, in place "
      "(the kernel layouts rerun over the new bytes)",
      features=["certify", "weight-update", "layouts"], hardware="gpu")
def test_gpu_reload_identity(engine, checkpoint):
    check_reload_identity(engine, checkpoint, "cuda")
