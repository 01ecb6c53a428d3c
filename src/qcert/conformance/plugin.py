"""The qcert pytest plugin: engine selection, expectations, hardware gating, case selection, mutants,
and per-case records for the reports.

Where things happen, so that pytest-xdist works: collection, gating and expectation rewriting run
wherever items run (workers); each phase report carries what the controller needs in
`user_properties` (serialized by xdist); records are assembled and written on the controller only.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pytest

from qcert.conformance import adapters, expectations, hardware
from qcert.conformance import records as rec
from qcert.conformance.case import meta_of

CASE_PROP = "qcert_case"  # on every report of a case item: the case's metadata and expectation
PHASE_PROP = "qcert_phase"  # on each phase report: the real outcome before any rewriting

_state_key = pytest.StashKey["_State"]()
_absent_key = pytest.StashKey[str]()  # on items whose requested hardware is missing: the failure text


class _State:
    def __init__(self, config: pytest.Config) -> None:
        self.engine_name: str = config.getoption("qcert_engine")
        self.hardware: set[str] = set(config.getoption("qcert_hardware") or [])
        self.case_filter: list[str] = config.getoption("qcert_case") or []
        self.mutant_id: str | None = config.getoption("qcert_mutant")
        self.use_expectations = not (self.mutant_id or config.getoption("qcert_no_expectations"))
        self.expectations: dict[str, expectations.Expectation] = {}
        self.visited: set[Path] = set()
        self.problems: list[str] = []
        self.mutant_cm: contextlib.ExitStack | None = None
        self.collector = rec.Collector()
        self.is_worker = hasattr(config, "workerinput")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("qcert", "qcert conformance")
    g.addoption("--engine", dest="qcert_engine", default="builtin", help="engine adapter name (default builtin)")
    g.addoption("--hardware", dest="qcert_hardware", action="append", choices=hardware.KINDS,
                help="run cases that need this accelerator (repeatable); absent hardware fails them")
    g.addoption("--qcert-json", dest="qcert_json", help="write the JSON report here")
    g.addoption("--qcert-junit", dest="qcert_junit", help="write JUnit XML (derived from the JSON) here")
    g.addoption("--qcert-markdown", dest="qcert_markdown", help="write a Markdown summary here")
    g.addoption("--qcert-case", dest="qcert_case", action="append", help="run only this case id (repeatable)")
    g.addoption("--qcert-mutant", dest="qcert_mutant", help="apply this mutant for the session; ignores expectations")
    g.addoption("--qcert-no-expectations", dest="qcert_no_expectations", action="store_true",
                help="ignore the engine's expectations file")
    g.addoption("--qcert-expectations", dest="qcert_expectations",
                help="expectations file (default: conformance/expectations/<engine>.toml if present)")
    g.addoption("--qcert-checkpoint", dest="qcert_checkpoint", help="checkpoint directory the certify cases check")


def _share_cores_between_workers() -> None:
    # xdist workers share the cores: N workers each with an all-core torch pool oversubscribe them,
    # and small ops then wait at every parallel-region barrier for a busy core (measured ~10x slower
    # on 2 cores). An explicit OMP_NUM_THREADS wins.
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "qcert_case: set by @case (do not use directly)")
    _share_cores_between_workers()
    state = _State(config)
    config.stash[_state_key] = state
    _load_hypothesis_profile(config)
    try:
        adapters.resolve(state.engine_name)
    except adapters.UnknownEngine as e:
        raise pytest.UsageError(str(e)) from None
    if state.use_expectations:
        path = config.getoption("qcert_expectations")
        path = Path(path) if path else expectations.default_path(state.engine_name)
        if config.getoption("qcert_expectations") or path.exists():
            try:
                state.expectations = expectations.load(path)
            except expectations.ExpectationsError as e:
                raise pytest.UsageError(str(e)) from None
    if state.mutant_id:
        from qcert.conformance import mutants

        found = mutants.discover()
        if state.mutant_id not in found:
            raise pytest.UsageError(f"unknown mutant {state.mutant_id!r}; known: {', '.join(sorted(found))}")
        state.mutant_cm = contextlib.ExitStack()
        state.mutant_cm.enter_context(found[state.mutant_id].apply())


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_state_key, None)
    if state is not None and state.mutant_cm is not None:
        state.mutant_cm.close()


def _register_hypothesis_profiles() -> None:
    # At import, before hypothesis' own plugin handles --hypothesis-profile.
    # ci: fast and derandomized (same examples every run); nightly: many examples;
    # selftest: stop at the first counterexample, a mutant only needs to be caught.
    from hypothesis import HealthCheck, Phase, settings

    common = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    settings.register_profile("ci", max_examples=60, derandomize=True, **common)
    settings.register_profile("nightly", max_examples=2000, **common)
    settings.register_profile("selftest", max_examples=60, derandomize=True,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate], **common)


_register_hypothesis_profiles()


def _load_hypothesis_profile(config: pytest.Config) -> None:
    from hypothesis import settings

    try:
        chosen = config.getoption("hypothesis_profile")
    except ValueError:
        chosen = None
    if not chosen:
        settings.load_profile("ci")


@pytest.fixture(scope="session")
def qcert_adapter(request: pytest.FixtureRequest) -> Any:
    """The engine adapter under test (conformance/CONTRACT.md), one per session."""
    return adapters.create(request.config.stash[_state_key].engine_name)


class _CpuByDefault:
    """The adapter as a case that declares no hardware sees it: load and plan default to
    device="cpu", so a CPU case gives the same answer on a machine that also has a GPU."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)

    def load(self, checkpoint: Any, **kwargs: Any) -> Any:
        return self._adapter.load(checkpoint, **{"device": "cpu", **kwargs})

    def plan(self, checkpoint: Any, **kwargs: Any) -> Any:
        return self._adapter.plan(checkpoint, **{"device": "cpu", **kwargs})


@pytest.fixture
def engine(request: pytest.FixtureRequest, qcert_adapter: Any) -> Any:
    """The engine adapter under test; for cases without a hardware mark, pinned to the CPU."""
    meta = meta_of(request.function)
    return _CpuByDefault(qcert_adapter) if meta is not None and meta.hardware is None else qcert_adapter


@pytest.fixture
def expected_error(request: pytest.FixtureRequest) -> Any:
    """`with expected_error as e:` asserts the case's declared raises=(type, fragment)."""
    from qcert.conformance.case import expect_error

    meta = meta_of(request.function)
    if meta is None:
        raise pytest.UsageError(f"{request.node.nodeid}: expected_error is only for @case functions")
    return expect_error(meta)


@pytest.fixture(scope="session")
def qcert_checkpoint(request: pytest.FixtureRequest) -> Path | None:
    """The --qcert-checkpoint directory, or None."""
    value = request.config.getoption("qcert_checkpoint")
    return Path(value) if value else None


def pytest_collectstart(collector: pytest.Collector) -> None:
    # Modules actually collected (pytest_collect_file also sees siblings of a file argument).
    if isinstance(collector, pytest.Module):
        collector.config.stash[_state_key].visited.add(collector.path)


def record_id(item: pytest.Item, case_id: str) -> str:
    callspec = getattr(item, "callspec", None)
    return f"{case_id}[{callspec.id}]" if callspec is not None else case_id


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[_state_key]
    case_items = [(item, meta_of(getattr(item, "obj", None))) for item in items]
    case_items = [(item, meta) for item, meta in case_items if meta is not None]
    _check_duplicates(state, case_items)
    if _whole_cases_folder(state, case_items):
        known = {meta.id for _, meta in case_items} | {record_id(i, m.id) for i, m in case_items}
        unknown = sorted(e for e in state.expectations if e not in known)
        if unknown:
            state.problems.append(f"expectations name cases that do not exist: {', '.join(unknown)}")
        missing = sorted(c for c in state.case_filter if c not in known)
        if missing:
            state.problems.append(f"--qcert-case names cases that do not exist: {', '.join(missing)}")
    for item, meta in case_items:
        _prepare(state, item, meta)
    if state.case_filter:
        wanted = set(state.case_filter)
        keep = [i for i in items if (p := case_props(i)) and (p["case"] in wanted or p["id"] in wanted)]
        dropped = [i for i in items if i not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_problems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # After -k/-m deselection, so the problem is always reported.
    problems = config.stash[_state_key].problems
    if problems:
        items.append(ConfigProblem.from_parent(session, name="qcert-config", nodeid="qcert-config",
                                               problems=tuple(problems)))


def _check_duplicates(state: _State, case_items: list[tuple[pytest.Item, Any]]) -> None:
    owner: dict[str, str] = {}
    for item, meta in case_items:
        where = f"{item.path}::{getattr(item, 'originalname', item.name)}"
        problem = f"case id {meta.id} is declared twice: {owner.setdefault(meta.id, where)} and {where}"
        if owner[meta.id] != where and problem not in state.problems:
            state.problems.append(problem)


def _whole_cases_folder(state: _State, case_items: list[tuple[pytest.Item, Any]]) -> bool:
    """True when every test_*.py beside the collected case modules was collected: only then can an
    expectation naming a missing case be told apart from a case that is just not in this run."""
    folders = {item.path.parent for item, _ in case_items}
    return bool(folders) and all(set(f.glob("test_*.py")) <= state.visited for f in folders)


def _prepare(state: _State, item: pytest.Item, meta: Any) -> None:
    rid = record_id(item, meta.id)
    expected, reason, link = "passed", None, None
    entry = expectations.lookup(state.expectations, rid, meta.id)
    if entry is not None:
        expected, reason, link = entry.outcome, entry.reason, entry.link
    device = hardware.describe(None)
    not_requested = meta.hardware is not None and not hardware.satisfies(meta.hardware, state.hardware)
    if not_requested:
        # Not requested: a skip the run expects, whatever the expectations say.
        expected, reason, link = "skipped", f"needs {hardware.need_text(meta.hardware)}", None
    elif meta.hardware is not None and not hardware.present(meta.hardware):
        # Requested but absent: must fail, whatever the expectations say.
        expected, reason, link, device = "passed", None, None, "absent"
        item.stash[_absent_key] = (f"--hardware {'/'.join(sorted(state.hardware))} was requested "
                                   f"but no {meta.hardware} device is visible to torch")
    elif meta.hardware is not None:
        device = hardware.describe(meta.hardware)
    if expected == "skipped":
        item.add_marker(pytest.mark.skip(reason=reason if not_requested else f"expected skip: {reason}"))
    props = dict(meta.as_dict(), id=rid, expected=expected, reason=reason, link=link, device=device,
                 engine=state.engine_name)
    item.user_properties.append((CASE_PROP, props))


def case_props(obj: Any) -> dict[str, Any] | None:
    for key, value in getattr(obj, "user_properties", ()):
        if key == CASE_PROP:
            return value
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    message = item.stash.get(_absent_key, None)
    if message is not None:
        pytest.fail(message, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    props = case_props(item)
    if props is None:
        return report
    actual = rec.phase_outcome(report)
    message = rec.phase_message(report, call)
    report.user_properties.append((PHASE_PROP, {"when": report.when, "outcome": actual, "message": message}))
    if item.stash.get(_absent_key, None) is None:
        _rewrite(report, props, actual)
    return report


def _rewrite(report: pytest.TestReport, props: dict[str, Any], actual: str) -> None:
    """Make pytest's own outcome agree with the verdict: an expected failure is shown as xfail (x),
    an unexpected pass as a failure."""
    expected = props["expected"]
    if expected not in ("failed", "error"):
        return
    if actual == expected and not report.passed:
        report.outcome = "skipped"
        report.wasxfail = f"expected {expected}: {props['reason']}"
    elif report.when == "call" and report.passed:
        report.outcome = "failed"
        report.longrepr = f"unexpected pass: expected {expected}: {props['reason']}"


class ConfigProblem(pytest.Item):
    """A failing item carrying problems found at collection (xdist runs it like any item)."""

    def __init__(self, *, problems: tuple[str, ...], **kw: Any) -> None:
        super().__init__(**kw)
        self.problems = problems

    def runtest(self) -> None:
        raise pytest.fail.Exception("\n".join(self.problems), pytrace=False)

    def reportinfo(self) -> tuple[str, int, str]:
        return "qcert", 0, "qcert configuration"


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash[_state_key]
    if not state.is_worker:
        session.config.pluginmanager.register(_ControllerRecords(state), "qcert-records")


class _ControllerRecords:
    """Assembles records from phase reports; on xdist these are the reports workers sent over."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid == "qcert-config" and report.failed:
            self.state.collector.problems.append(str(report.longrepr))
        self.state.collector.add(report, case_props(report), _phase(report))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        state = self.state
        targets = {k: config.getoption(f"qcert_{k}") for k in ("json", "junit", "markdown")}
        data = None
        if any(targets.values()) or state.collector.records:
            from qcert.conformance import report

            data = report.build(state.collector, engine=state.engine_name, requested=sorted(state.hardware),
                                mutant=state.mutant_id, checkpoint=config.getoption("qcert_checkpoint"))
            report.write_all(data, **targets)
        config.stash[_result_key] = data


_result_key = pytest.StashKey[Any]()


def _phase(report: pytest.TestReport) -> dict[str, Any] | None:
    for key, value in report.user_properties:
        if key == PHASE_PROP:
            return value
    return None


def session_records(config: pytest.Config) -> Any:
    """The live record collector of this session (controller side)."""
    return config.stash[_state_key].collector


def session_result(config: pytest.Config) -> dict[str, Any] | None:
    """The JSON report data of a finished session (for in-process runs: CLI, selftest)."""
    return config.stash.get(_result_key, None)
