"""Device strings and engine arguments (UPSTREAM.md section 5, sglang#22543).

An engine's `device` argument may name an index (`cuda:1`); the normalized arguments carry the device
TYPE (`cuda`) and the index separately, because engine code decides features by comparing the type.
Forms are checked with `check_available=False` so a CPU machine can certify `cuda:0` handling.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qcert.conformance.case import case

TYPES = ["cuda", "cpu", "xpu", "npu", "hpu", "musa", "mps"]
INDEXED = [("cuda:0", "cuda", 0), ("cuda:1", "cuda", 1), ("cuda:127", "cuda", 127), ("cpu:0", "cpu", 0),
           ("xpu:3", "xpu", 3), ("npu:2", "npu", 2), ("hpu:0", "hpu", 0), ("mps:0", "mps", 0)]
GARBAGE = ["gpu", "cuda:", "cuda:abc", "cuda:-1", ":0", "CUDA:0", " cuda", "cuda ", "cuda:0:1", "cuda:01",
           "cuda:1.0", "cuda:128", "cuda:\u0661", "", 0, b"cuda", ("cuda", 0)]

_type = st.sampled_from(TYPES)
_index = st.integers(min_value=0, max_value=127)
accepted_forms = st.one_of(_type, st.builds(lambda t, i: f"{t}:{i}", _type, _index))
# Near misses shrink to readable counterexamples; free text covers the rest.
near_misses = st.builds(lambda t, sep, tail: f"{t}{sep}{tail}", st.sampled_from(TYPES + ["gpu", "CUDA", ""]),
                        st.sampled_from([":", "", " ", "::"]), st.sampled_from(["", "0", "-1", "abc", "007", "1 "]))
any_value = st.one_of(accepted_forms, near_misses, st.text(max_size=12))


def _norm(engine, value):
    return engine.normalize_args(device=value, check_available=False)


@case("device/strip-index", "type:N normalizes to device type `type` with device_index N",
      refs=["sglang#22543"], features=["device-args"])
@pytest.mark.parametrize("value,device,index", INDEXED, ids=[v for v, _, _ in INDEXED])
def test_strip_index(engine, value, device, index):
    args = _norm(engine, value)
    assert (args.device, args.device_index) == (device, index)


@case("device/bare-type", "a bare device type normalizes to itself with no index",
      refs=["sglang#22543"], features=["device-args"])
@pytest.mark.parametrize("value", TYPES)
def test_bare_type(engine, value):
    args = _norm(engine, value)
    assert (args.device, args.device_index) == (value, None)


@case("device/reject-garbage", "a malformed device value is a ValueError naming the value",
      refs=["sglang#22543"], features=["device-args", "bad-input"], raises=(ValueError, "device"))
@pytest.mark.parametrize("value", GARBAGE, ids=[repr(v) for v in GARBAGE])
def test_reject_garbage(engine, expected_error, value):
    with expected_error as error:
        _norm(engine, value)
    assert repr(value) in str(error.value)


@pytest.fixture(params=[True, False], ids=["gpu-visible", "no-gpu"])
def gpu_visible(request, monkeypatch):
    """Both machines on any machine: torch is told a CUDA/ROCm device is (or is not) visible, so the
    presence checks are tested for both answers wherever the suite runs (the engine asks torch at
    call time; an adapter whose engine runs in another process would need its own switch)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: request.param)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if request.param else 0)
    return request.param


@case("device/autodetect", "device=None picks cuda when torch sees a CUDA or ROCm device, else cpu",
      refs=["sglang#22543"], features=["device-args"])
def test_autodetect(engine, gpu_visible):
    args = engine.normalize_args(device=None)
    assert args.device == ("cuda" if gpu_visible else "cpu")
    assert args.device_index is None


@case("device/cpu-always-available", "device='cpu' is accepted with the presence check on, with or without a GPU",
      refs=["sglang#22543"], features=["device-args"])
def test_cpu_always_available(engine, gpu_visible):
    assert engine.normalize_args(device="cpu").device == "cpu"


@case("device/absent-cuda", "device='cuda' without a visible CUDA/ROCm device is a ValueError naming cuda",
      refs=["sglang#22543"], features=["device-args", "bad-input"], raises=(ValueError, "cuda"))
def test_absent_cuda(engine, expected_error, gpu_visible):
    if gpu_visible:
        assert engine.normalize_args(device="cuda").device == "cuda"
    else:
        with expected_error:
            engine.normalize_args(device="cuda")


@case("device/cuda-graphs-key-on-type", "use_cuda_graphs decides the same for `cuda` and `cuda:N`",
      refs=["sglang#22543"], features=["device-args"])
@pytest.mark.parametrize("value", ["cuda:0", "cuda:3"])
def test_cuda_graphs_key_on_type(engine, value):
    assert _norm(engine, "cuda").use_cuda_graphs is True
    assert _norm(engine, value).use_cuda_graphs is True
    assert _norm(engine, "cpu:0").use_cuda_graphs is False


@case("device/idempotent", "normalizing the normalized device again changes nothing",
      refs=["sglang#22543"], features=["device-args", "hypothesis"])
@given(value=accepted_forms)
def test_idempotent(engine, value):
    once = _norm(engine, value)
    twice = _norm(engine, once.device if once.device_index is None else f"{once.device}:{once.device_index}")
    assert (twice.device, twice.device_index) == (once.device, once.device_index)
    # Feeding the type back alone keeps the type.
    assert _norm(engine, once.device).device == once.device


@case("device/type-has-no-colon", "every accepted value yields a known device type without ':'",
      refs=["sglang#22543"], features=["device-args", "hypothesis"])
@given(value=any_value)
def test_type_has_no_colon(engine, value):
    try:
        args = _norm(engine, value)
    except ValueError:
        return
    assert ":" not in args.device
    assert args.device in TYPES


@case("device/torch-roundtrip", "an accepted string means the same device to torch (type and index)",
      refs=["sglang#22543"], features=["device-args", "hypothesis"])
@given(value=accepted_forms.filter(lambda v: v.split(":")[0] in ("cuda", "cpu", "xpu", "hpu", "mps")))
def test_torch_roundtrip(engine, value):
    expected = torch.device(value)
    args = _norm(engine, value)
    assert (args.device, args.device_index) == (expected.type, expected.index)
    assert args.torch_device == expected


@case("args/unknown-keyword", "an unknown engine argument is a ValueError naming it",
      features=["device-args", "bad-input"], raises=(ValueError, "devcie"))
def test_unknown_keyword(engine, expected_error):
    with expected_error:
        engine.normalize_args(devcie="cpu")


@case("args/bad-values", "a bad dtype or shared_expert_fusion value is a ValueError naming the argument",
      features=["device-args", "bad-input"], raises=(ValueError, ""))
@pytest.mark.parametrize("kw,name", [({"dtype": "int3"}, "dtype"), ({"dtype": torch.int8}, "dtype"),
                                     ({"shared_expert_fusion": "maybe"}, "shared_expert_fusion"),
                                     ({"shared_expert_fusion": True}, "shared_expert_fusion")],
                         ids=["dtype-str", "dtype-int8", "fusion-str", "fusion-bool"])
def test_bad_values(engine, expected_error, kw, name):
    with expected_error as error:
        engine.normalize_args(device="cpu", **kw)
    assert name in str(error.value)


@case("args/defaults", "defaults: bfloat16, fusion auto, no backend overrides (read-only)",
      features=["device-args"])
def test_defaults(engine):
    args = engine.normalize_args(device="cpu")
    assert args.dtype == torch.bfloat16
    assert args.shared_expert_fusion == "auto"
    assert dict(args.backends) == {}
    with pytest.raises(TypeError):
        args.backends["mxfp4_linear"] = "triton"
