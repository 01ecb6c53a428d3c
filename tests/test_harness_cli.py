"""The qcert CLI, selftest and new-case scaffolding."""

import subprocess
import sys

import pytest

from qcert.conformance import cli, hardware, newcase, selftest
from qcert.conformance.mutants import Mutant, MutantError, discover

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("argv,fragment", [
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["run", "--engine", "no-such-engine"], "unknown engine 'no-such-engine'"),
    (["run", "-n", "many"], "-n 'many'"),
    (["run", "--hardware", "tpu"], "invalid choice: 'tpu'"),
    (["selftest", "--mutant", "no/such"], "unknown mutant 'no/such'"),
    (["new-case", "Bad Id"], "'Bad Id' must look like 'area/name'"),
    (["new-case", "device/strip-index"], "case device/strip-index already exists"),
    (["new-case", "toy/x", "--feature", "nope"], "unknown feature(s) nope"),
])
def test_unusable_arguments_exit_2_with_one_line(argv, fragment):
    proc = subprocess.run([sys.executable, "-m", "qcert.conformance.cli", *argv], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr


def test_list_json(capsys):
    assert cli.main(["list", "--json"]) == 0
    import json

    cases = {c["case"]: c for c in json.loads(capsys.readouterr().out)}
    assert cases["device/strip-index"]["refs"] == ["sglang#22543"]
    assert "device/strip-index[cuda:1]" in cases["device/strip-index"]["items"]
    assert cases["device/reject-garbage"]["raises"] == {"type": "ValueError", "fragment": "device"}


def test_run_selected_case_writes_reports(tmp_path, capsys):
    rc = cli.main(["run", "--case", "device/strip-index", "--json", str(tmp_path / "r.json"),
                   "--markdown", str(tmp_path / "r.md")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "PASS: 8 items" in out
    assert (tmp_path / "r.md").read_text().count("device/strip-index") == 1


def test_device_mutants_are_killed():
    # The device mutants only: `qcert selftest` (in .ci/run) runs them all.
    device = {k: m for k, m in discover().items() if k.startswith("device/")}
    assert set(device) >= {"device/index-not-stripped", "device/strip-only-autodetect",
                           "device/garbage-accepted", "device/index-dropped"}
    results = selftest.run(mutants=device)
    assert all(r.ok for r in results), [(r.mutant.id, r.killed, r.problem) for r in results]


def _toy(**kw):
    fields = dict(id="toy/survivor", description="patches nothing that matters", upstream="none",
                  kills=["device/strip-index"], patches=[("qcert.engine.args", "ACCEPTED_DEVICE_FORMS", "x")])
    fields.update(kw)
    return Mutant(**fields)


def test_every_case_is_named_by_a_mutant(capsys):
    """Every conformance case must be shown to fail: some mutant names it (`qcert selftest` checks the
    kill; hardware cases on their hardware)."""
    import json

    assert cli.main(["list", "--json"]) == 0
    cases = {c["case"] for c in json.loads(capsys.readouterr().out)}
    named = {c for m in discover().values() for c in m.kills}
    assert sorted(cases - named) == []


def test_selftest_reports_a_surviving_mutant():
    [result] = selftest.run(mutants={"toy/survivor": _toy()})
    assert not result.ok
    assert result.killed == {"device/strip-index": False}


def test_selftest_reports_unknown_case_and_missing_target():
    [unknown] = selftest.run(mutants={"t/a": _toy(id="t/a", kills=["device/no-such-case"])})
    assert not unknown.ok and "device/no-such-case" in unknown.problem
    [missing] = selftest.run(mutants={"t/b": _toy(id="t/b", patches=[("qcert.engine.args", "no_such_fn", None)])})
    assert not missing.ok and "qcert.engine.args.no_such_fn does not exist" in missing.problem


def test_selftest_reports_hardware_cases_as_not_run_here():
    """A mutant naming a GPU case: without --hardware the case is not run (None), neither killed nor
    survived, and the mutant is not a failure; the CPU cases it names still have to fail."""
    gpu_only = _toy(id="t/gpu", kills=["kernels/gpu-mxfp4-nan-scale-propagates"])
    [result] = selftest.run(mutants={"t/gpu": gpu_only})
    assert result.ok and result.killed == {"kernels/gpu-mxfp4-nan-scale-propagates": None}
    mixed = _toy(id="t/mixed", kills=["device/strip-index", "kernels/gpu-mxfp4-nan-scale-propagates"])
    [result] = selftest.run(mutants={"t/mixed": mixed})
    assert not result.ok
    assert result.killed == {"device/strip-index": False, "kernels/gpu-mxfp4-nan-scale-propagates": None}


def test_selftest_skipped_cases_never_pass_for_a_kill():
    """A case whose every item skipped here (an interpreted-triton case in a GPU run) is not run (None):
    the mutant is fine when another case it names killed it, and not killed when none did."""
    toy = _toy(id="t/skips", kills=["kernels/mxfp4-moe-matches-reference", "kernels/gpu-moe-matches-reference"])
    skipped = ["kernels/mxfp4-moe-matches-reference"]
    killed_on_gpu = selftest.MutantResult(toy, {skipped[0]: None, "kernels/gpu-moe-matches-reference": True},
                                          skipped=skipped)
    assert killed_on_gpu.ok and not killed_on_gpu.hardware_only
    nothing_ran = selftest.MutantResult(toy, {skipped[0]: None, "kernels/gpu-moe-matches-reference": None},
                                        skipped=skipped)
    assert not nothing_ran.ok and not nothing_ran.hardware_only
    hardware_only = selftest.MutantResult(toy, {c: None for c in toy.kills})
    assert hardware_only.ok and hardware_only.hardware_only


def test_selftest_a_case_that_only_skips_is_not_a_kill():
    """Through a real session: every item of the named case skips under the mutant, so nothing killed it."""
    def skip(*args, **kwargs):
        pytest.skip("toy: this mutant makes the case skip")

    skipper = _toy(id="t/skipper", kills=["certify/schemes-match-storage"],
                   patches=[("qcert.conformance.checkpoints", "stored", skip)])
    [result] = selftest.run(mutants={"t/skipper": skipper})
    assert result.killed == {"certify/schemes-match-storage": None}
    assert result.skipped == ["certify/schemes-match-storage"]
    assert not result.ok and not result.hardware_only


@pytest.mark.skipif(hardware.present("cuda"), reason="checks the refusal on a machine without a CUDA GPU")
def test_selftest_refuses_hardware_that_is_not_there():
    with pytest.raises(MutantError, match="--hardware cuda: no such device"):
        selftest.run(mutants={"t/gpu": _toy(id="t/gpu")}, hardware=["cuda"])


def test_mutant_patches_are_undone():
    from qcert.engine import args

    before = args.parse_device
    mutant = discover()["device/garbage-accepted"]
    with pytest.raises(RuntimeError):
        with mutant.apply():
            assert args.parse_device is not before
            raise RuntimeError
    assert args.parse_device is before


def test_mutant_must_name_a_case():
    with pytest.raises(MutantError, match="names no case"):
        _toy(kills=[])


def test_new_case_scaffolds_a_red_case_kept_green_by_its_expectation(pytester):
    folder = pytester.mkdir("cases")
    expectations = pytester.path / "expect.toml"
    expectations.write_text("")
    module = newcase.scaffold("toy/new-thing", statement="does the thing", features=["bad-input"],
                              folder=folder, expectations=expectations)
    assert module.name == "test_toy.py"
    newcase.scaffold("toy/second", folder=folder, expectations=expectations)
    with pytest.raises(newcase.NewCaseError, match="already exists"):
        newcase.scaffold("toy/second", folder=folder, expectations=expectations)
    result = pytester.runpytest(str(folder), "--qcert-expectations", str(expectations), "--qcert-json", "r.json")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(xfailed=2)
    red = pytester.runpytest(str(folder), "--qcert-no-expectations")
    red.assert_outcomes(failed=2)


def test_inspect_names_the_backends_once_a_forward_ran(capsys):
    """`qcert inspect`: headers only, --load (nothing has run yet: no backends), --forward (every
    quantized op names the backend it ran)."""
    import json

    from qcert import fixtures

    path = str(fixtures.cached("deepseek-v3", "quark-mxfp4", layers=2, dense_layers=1, experts=4, top_k=2))
    reports = {}
    for flags in ([], ["--load"], ["--forward"]):
        assert cli.main(["inspect", path, "--json", *flags]) == 0
        reports[tuple(flags)] = json.loads(capsys.readouterr().out)
    assert reports[()]["backends"] == {} and reports[("--load",)]["backends"] == {}
    assert {"mxfp4_linear", "mxfp4_moe"} <= set(reports[("--forward",)]["backends"])
