import pytest
import torch

from qcert.kernels.tolerances import TOLERANCES, assert_close_rel, rel_error


def test_passes_within_bound_and_reports_error():
    ref = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    out = ref.bfloat16().float()
    err = assert_close_rel(out, ref, torch.bfloat16)
    assert 0 < err <= TOLERANCES["bf16"]


def test_fails_with_readable_message():
    ref = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))
    out = ref.clone()
    out[3, 4] += 10
    with pytest.raises(AssertionError, match=r"mxfp4_linear: mxfp4: relative error .* > bound 2.0e-02.*\(3, 4\)"):
        assert_close_rel(out, ref, "mxfp4", what="mxfp4_linear")


def test_nan_and_shape_never_pass():
    ref = torch.randn(8, 8, generator=torch.Generator().manual_seed(2))
    bad = ref.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(AssertionError, match="non-finite"):
        assert_close_rel(bad, ref, "fp32", bound=1e9)
    with pytest.raises(AssertionError, match="non-finite"):
        assert_close_rel(bad, bad, "fp32", bound=1e9)
    with pytest.raises(AssertionError, match="shape"):
        assert_close_rel(ref[:4], ref, "fp32")
    assert rel_error(bad, ref) != rel_error(bad, ref)


def test_unknown_format():
    with pytest.raises(KeyError, match="known"):
        assert_close_rel(torch.ones(1), torch.ones(1), "int3")
