"""The qcert pytest plugin on toy case modules (pytester, in-process)."""

import json
import xml.etree.ElementTree as ET

import pytest

from qcert.conformance import hardware

pytest_plugins = ["pytester"]

TOY = '''
import pytest
from qcert.conformance.case import case

@case("toy/pass", "always passes", features=["bad-input"])
def test_pass():
    assert True

@case("toy/fail", "always fails", refs=["sglang#1"], features=["bad-input"])
def test_fail():
    open("ran-fail", "w").write("ran")
    assert 1 == 2, "one is not two"

@case("toy/param", "passes for a, fails for b", features=["bad-input"])
@pytest.mark.parametrize("v", ["a", "b"])
def test_param(v):
    assert v == "a"

@case("toy/raises", "names the value", features=["bad-input"], raises=(ValueError, "bad value"))
@pytest.mark.parametrize("msg", ["bad value 3", "other"])
def test_raises(expected_error, msg):
    with expected_error:
        raise ValueError(msg)

@case("toy/cuda", "needs cuda", features=["bad-input"], hardware="cuda")
def test_cuda():
    open("ran-cuda", "w").write("ran")

def test_plain_unit_test():
    assert True
'''


def _expect(pytester, *entries):
    body = "".join(f'[[expect]]\nid = "{i}"\noutcome = "{o}"\nreason = "because {i}"\n\n' for i, o in entries)
    return str(pytester.makefile(".toml", expect=body))


def _run(pytester, *args):
    result = pytester.runpytest("-p", "no:cacheprovider", "--qcert-json", "r.json", *args)
    data = json.loads((pytester.path / "r.json").read_text())
    return result, data, {r["id"]: r for r in data["records"]}


def test_records_outcomes_and_plain_tests_pass_through(pytester):
    pytester.makepyfile(test_toy=TOY)
    result, data, records = _run(pytester, "--qcert-no-expectations")
    assert result.ret == 1
    assert set(records) == {"toy/pass", "toy/fail", "toy/param[a]", "toy/param[b]", "toy/raises[bad value 3]",
                            "toy/raises[other]", "toy/cuda"}
    assert records["toy/pass"]["verdict"] == "expected"
    assert records["toy/fail"]["outcome"] == "failed"
    assert records["toy/fail"]["verdict"] == "unexpected-fail"
    assert "one is not two" in records["toy/fail"]["message"]
    assert records["toy/param[b]"]["case"] == "toy/param"
    assert records["toy/raises[other]"]["outcome"] == "failed"
    assert records["toy/raises[bad value 3]"]["outcome"] == "passed"
    assert records["toy/fail"]["refs"] == ["sglang#1"]
    assert data["engine"] == "builtin" and data["contract_version"] == "0.1"
    assert data["summary"]["ok"] is False
    result.assert_outcomes(passed=4, failed=3, skipped=1)  # the plain unit test runs, unreported


def test_expected_failure_runs_and_is_not_a_failure(pytester):
    pytester.makepyfile(test_toy=TOY)
    path = _expect(pytester, ("toy/fail", "fail"), ("toy/param[b]", "fail"), ("toy/raises[other]", "fail"))
    result, data, records = _run(pytester, "--qcert-expectations", path)
    assert result.ret == 0, result.stdout.str()
    assert (pytester.path / "ran-fail").exists()  # it still ran
    assert records["toy/fail"]["outcome"] == "failed"
    assert records["toy/fail"]["expected"] == "failed"
    assert records["toy/fail"]["verdict"] == "expected"
    assert records["toy/param[a]"]["expected"] == "passed"  # the item entry does not spread
    assert data["summary"]["ok"] is True


def test_unexpected_pass_fails_the_run(pytester):
    pytester.makepyfile(test_toy=TOY)
    path = _expect(pytester, ("toy/pass", "fail"))
    result, data, records = _run(pytester, "--qcert-expectations", path, "-k", "pass")
    assert result.ret == 1
    assert records["toy/pass"]["verdict"] == "unexpected-pass"
    result.stdout.fnmatch_lines(["*unexpected pass*because toy/pass*"])


def test_expected_skip(pytester):
    pytester.makepyfile(test_toy=TOY)
    path = _expect(pytester, ("toy/fail", "skip"))
    result, data, records = _run(pytester, "--qcert-expectations", path, "-k", "fail")
    assert result.ret == 0
    assert not (pytester.path / "ran-fail").exists()
    assert records["toy/fail"]["outcome"] == "skipped"
    assert records["toy/fail"]["verdict"] == "expected"


def test_unknown_expectation_id_fails_naming_it(pytester):
    pytester.makepyfile(test_toy=TOY)
    path = _expect(pytester, ("toy/fail", "fail"), ("toy/no-such-case", "fail"))
    result, data, _ = _run(pytester, "--qcert-expectations", path, "-k", "pass")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*expectations name cases that do not exist: toy/no-such-case*"])
    assert "toy/no-such-case" in data["problems"][0]
    assert data["summary"]["ok"] is False


def test_unknown_id_not_flagged_when_part_of_the_folder_runs(pytester):
    pytester.makepyfile(test_toy=TOY, test_other='''
from qcert.conformance.case import case

@case("toy/other", "other module", features=["bad-input"])
def test_other():
    pass
''')
    path = _expect(pytester, ("toy/other", "skip"))
    result = pytester.runpytest("test_toy.py", "--qcert-expectations", path, "-k", "pass")
    assert result.ret == 0, result.stdout.str()


def test_malformed_expectations_is_a_usage_error(pytester):
    pytester.makepyfile(test_toy=TOY)
    path = _expect(pytester, ("toy/fail", "maybe"))
    result = pytester.runpytest("--qcert-expectations", path)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*outcome 'maybe' is not one of fail, error, skip*"])


def test_hardware_not_requested_skips_with_reason(pytester):
    pytester.makepyfile(test_toy=TOY)
    result, _, records = _run(pytester, "-k", "cuda")
    assert result.ret == 0
    assert records["toy/cuda"]["outcome"] == "skipped"
    assert records["toy/cuda"]["expected"] == "skipped"
    assert "needs --hardware cuda" in records["toy/cuda"]["message"]


def test_hardware_requested_but_absent_fails_despite_expectations(pytester, monkeypatch):
    monkeypatch.setattr(hardware, "present", lambda kind: False)
    pytester.makepyfile(test_toy=TOY)
    path = _expect(pytester, ("toy/cuda", "fail"))
    result, _, records = _run(pytester, "-k", "cuda", "--hardware", "cuda", "--qcert-expectations", path)
    assert result.ret == 1
    assert not (pytester.path / "ran-cuda").exists()
    assert records["toy/cuda"]["outcome"] == "failed"
    assert "no cuda device is visible" in records["toy/cuda"]["message"]


def test_hardware_present_runs(pytester, monkeypatch):
    monkeypatch.setattr(hardware, "present", lambda kind: kind == "cuda")
    monkeypatch.setattr(hardware, "describe", lambda kind: "cuda: toy" if kind else "cpu")
    pytester.makepyfile(test_toy=TOY)
    result, _, records = _run(pytester, "-k", "cuda", "--hardware", "cuda")
    assert result.ret == 0
    assert (pytester.path / "ran-cuda").exists()
    assert records["toy/cuda"]["device"] == "cuda: toy"


@pytest.mark.parametrize("decl,fragment", [
    ('@case("toy/x", "s", features=["no-such-feature"])', "no-such-feature"),
    ('@case("Toy/X", "s")', "'Toy/X'"),
    ('@case("toy/x", "s", hardware="tpu")', "'tpu'"),
])
def test_bad_metadata_is_a_collection_error(pytester, decl, fragment):
    pytester.makepyfile(test_bad=f"from qcert.conformance.case import case\n\n{decl}\ndef test_x():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*{fragment}*"])


def test_duplicate_case_id_fails(pytester):
    pytester.makepyfile(test_dup='''
from qcert.conformance.case import case

@case("toy/dup", "one", features=["bad-input"])
def test_one():
    pass

@case("toy/dup", "two", features=["bad-input"])
def test_two():
    pass
''')
    result = pytester.runpytest()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*case id toy/dup is declared twice*"])


def test_case_selection(pytester):
    pytester.makepyfile(test_toy=TOY)
    result, _, records = _run(pytester, "--qcert-case", "toy/param", "--qcert-case", "toy/pass")
    assert set(records) == {"toy/pass", "toy/param[a]", "toy/param[b]"}
    bad = pytester.runpytest("--qcert-case", "toy/nope")
    bad.stdout.fnmatch_lines(["*--qcert-case names cases that do not exist: toy/nope*"])


def test_junit_and_markdown_derived_from_json(pytester):
    pytester.makepyfile(test_toy=TOY)
    path = _expect(pytester, ("toy/fail", "fail"), ("toy/pass", "fail"))
    result = pytester.runpytest("--qcert-expectations", path, "--qcert-junit", "r.xml", "--qcert-markdown", "r.md",
                                "-k", "not raises and not cuda")
    assert result.ret == 1
    suite = ET.parse(pytester.path / "r.xml").getroot()
    cases = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert cases["toy/fail"].find("skipped").get("message") == "expected failure: because toy/fail"
    assert "unexpected pass" in cases["toy/pass"].find("failure").get("message")
    assert "unexpected-fail" in cases["toy/param[b]"].find("failure").get("message")
    assert cases["toy/param[a]"].find("failure") is None and cases["toy/param[a]"].find("skipped") is None
    assert suite.get("failures") == "2"
    md = (pytester.path / "r.md").read_text()
    assert "**FAIL**" in md
    assert "| `toy/param` | 2 | 1 | 1 | 0 | 0 | unexpected-fail |" in md


def test_xdist_records_on_controller(pytester):
    pytester.makepyfile(test_toy=TOY)
    result, data, records = _run(pytester, "-n", "2", "--qcert-no-expectations")
    assert result.ret == 1
    assert len(records) == 7
    assert records["toy/fail"]["verdict"] == "unexpected-fail"
    assert "one is not two" in records["toy/fail"]["message"]
