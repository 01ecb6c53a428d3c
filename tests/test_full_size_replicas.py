"""Static certification at real scale (nightly: `pytest -m slow`): full-size header-only replicas of
DeepSeek-V3, Kimi-K2.5 and GLM-5 (hundreds of GB apparent, sparse on disk) go through `qcert
certify` from headers alone, and a replica with a broken exclude list is refused."""

import pytest

from qcert.conformance.cli import main
from qcert.engine import plan
from qcert.fixtures.replica import replica

pytestmark = pytest.mark.slow

FUSED = {"deepseek-v3": "256 routed experts", "kimi-k2.5": "384 routed experts", "glm-5": "256 routed experts"}


@pytest.mark.parametrize("family", sorted(FUSED))
def test_full_size_replica_certifies(tmp_path, family, capsys):
    path = replica(tmp_path / family, family)
    report = plan(path, device="cpu")
    assert report["missing"] == [] and report["unmatched_exclude_entries"] == []
    assert report["fusion"]["shared_experts"] == 1 and FUSED[family] in report["fusion"]["reason"]
    assert main(["certify", str(path)]) == 0, capsys.readouterr().out


def test_full_size_replica_with_glob_exclude_fails_certification(tmp_path, capsys):
    # Quark exclude entries are exact names or `re:`; a glob matches nothing, so the routers the
    # author meant to keep in BF16 were exported as MXFP4 and the entry is reported unmatched.
    path = replica(tmp_path / "kimi", "kimi-k2.5", exclude=["language_model.lm_head", "language_model.model.layers.*.mlp.gate"])
    assert main(["certify", str(path)]) == 1
    assert "language_model.model.layers.*.mlp.gate" in capsys.readouterr().out
