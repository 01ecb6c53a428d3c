"""`qcert selftest`: every mutant must make each case it names fail against the built-in engine.

A named case that needs hardware (a GPU case) runs only where `--hardware` asks for it, as in `qcert
run`; elsewhere it is reported as not run here (None in `killed`), never as killed or survived. A
mutant naming only such cases is then checked by the nightly hardware jobs alone. A case whose every
item skipped (say, an interpreted-triton case in a GPU run) is also not run here (None, and listed in
`skipped`); a mutant must then be killed by another case it names.

Per worker process, torch and the case modules are imported once; each mutant gets its own
in-process pytest session over just the modules holding its cases, with its patches applied around
that session and always undone. With several workers the mutants are dealt out round-robin to
child processes (`qcert selftest --mutant ...`) and their JSON results merged.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qcert.conformance import hardware as hw
from qcert.conformance import plugin
from qcert.conformance.mutants import Mutant, MutantError, discover


@dataclass
class MutantResult:
    mutant: Mutant
    # case id -> at least one item failed; None: the case needs hardware this run did not ask for
    killed: dict[str, bool | None] = field(default_factory=dict)
    problem: str | None = None  # unknown case, a patch that cannot apply, a broken session
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # cases (None in killed) whose every item skipped

    @property
    def ok(self) -> bool:
        """No case it names survived, and one of them killed it unless only hardware stood in the way:
        skips alone never pass for a kill."""
        values = self.killed.values()
        return (self.problem is None and all(k is not False for k in values)
                and (any(k is True for k in values) or not self.skipped))

    @property
    def hardware_only(self) -> bool:
        """Nothing it names ran here: every case needs hardware this run did not ask for."""
        return bool(self.killed) and not self.skipped and all(k is None for k in self.killed.values())


def cases_dir() -> Path:
    from qcert.conformance import cases

    return Path(list(cases.__path__)[0])


def base_args(folder: Path) -> list[str]:
    # Explicit, so the run does not depend on whichever pytest config the cwd happens to have.
    return ["--rootdir", str(folder.parent.parent), "-c", os.devnull, "--import-mode=importlib",
            "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "--no-header"]


# Their session-end gc.collect() passes cost ~0.3 s each with torch loaded, per mutant session.
_FAST = ["-p", "no:unraisableexception", "-p", "no:threadexception"]


def collect(folder: Path, extra: list[str] | None = None) -> tuple[int, list[pytest.Item], str]:
    """Collect the cases quietly in-process: (pytest exit code, case items, pytest's output)."""
    grab = _Grab()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = pytest.main([str(folder), "--collect-only", *base_args(folder), *(extra or [])], plugins=[grab])
    return int(rc), grab.items, out.getvalue()


class _Grab:
    """Collects case items and the session's report; with `kills`, skips the remaining items of a
    case once one of its items failed (they cannot change the verdict) and stops when all are killed."""

    def __init__(self, kills: set[str] | None = None) -> None:
        self.items: list[pytest.Item] = []
        self.result: dict[str, Any] | None = None
        self.kills = kills or set()
        self.killed: set[str] = set()
        self.session: pytest.Session | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> bool | None:
        props = plugin.case_props(item)
        return True if props is not None and props["case"] in self.killed else None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = plugin.case_props(report)
        if report.failed and props is not None and props["case"] in self.kills:
            self.killed.add(props["case"])
            if self.killed == self.kills and self.session is not None:
                self.session.shouldstop = "every named case failed"

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = [i for i in session.items if plugin.case_props(i) is not None]

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.result = plugin.session_result(config)


def run(mutants: dict[str, Mutant] | None = None, only: str | list[str] | None = None,
        folder: Path | None = None, workers: int = 1, hardware: list[str] | tuple[str, ...] = ()) -> list[MutantResult]:
    """`hardware`: the accelerators to run hardware cases on; each must be present (a case that
    fails only because its device is missing would pass for a kill)."""
    missing = [k for k in hardware if not hw.present(k)]
    if missing:
        raise MutantError(f"--hardware {', '.join(missing)}: no such device is visible to torch here")
    folder = folder or cases_dir()
    mutants = discover() if mutants is None else mutants
    if only is not None:
        wanted = [only] if isinstance(only, str) else list(only)
        for name in wanted:
            if name not in mutants:
                raise MutantError(f"unknown mutant {name!r}; known: {', '.join(sorted(mutants))}")
        mutants = {name: mutants[name] for name in wanted}
    if workers > 1 and len(mutants) > 1:
        return _run_parallel(mutants, workers, hardware)
    hw_args = hw.pytest_args(hardware)
    rc, items, output = collect(folder, ["--qcert-no-expectations", *hw_args])
    if rc not in (0, 5):
        raise MutantError(f"collecting {folder} failed (pytest exit {rc}):\n{output[-3000:]}")
    modules: dict[str, set[str]] = {}
    needs: set[str] = set()  # cases that need hardware this run did not ask for
    for item in items:
        props = plugin.case_props(item)
        modules.setdefault(props["case"], set()).add(str(item.path))
        if props["hardware"] is not None and not hw.satisfies(props["hardware"], set(hardware)):
            needs.add(props["case"])
    return [_run_one(m, modules, needs, folder, hw_args) for m in mutants.values()]


def _run_one(mutant: Mutant, modules: dict[str, set[str]], needs: set[str], folder: Path,
             hw_args: list[str]) -> MutantResult:
    result = MutantResult(mutant)
    unknown = [c for c in mutant.kills if c not in modules]
    if unknown:
        result.problem = f"names unknown case(s): {', '.join(unknown)}"
        return result
    kills = [c for c in mutant.kills if c not in needs]
    if not kills:  # every named case needs hardware this run did not ask for
        result.killed = {c: None for c in mutant.kills}
        return result
    files = sorted(set().union(*(modules[c] for c in kills)))
    selection = [a for c in kills for a in ("--qcert-case", c)]
    grab = _Grab(set(kills))
    out = io.StringIO()
    start = time.perf_counter()
    try:
        with mutant.apply(), contextlib.redirect_stdout(out):
            rc = pytest.main([*files, *base_args(folder), *_FAST, "--qcert-no-expectations",
                             "--hypothesis-profile=selftest", *hw_args, *selection],
                             plugins=[grab])
    except MutantError as e:
        result.problem = str(e)
        return result
    finally:
        result.seconds = time.perf_counter() - start
    stopped_by_us = rc == pytest.ExitCode.INTERRUPTED and grab.killed == set(kills)
    if (rc not in (0, 1) and not stopped_by_us) or grab.result is None:
        result.problem = f"pytest exit {int(rc)}:\n{out.getvalue()[-2000:]}"
        return result
    result.killed = {c: (None if c in needs else False) for c in mutant.kills}
    ran = set()
    for record in grab.result["records"]:
        if record["outcome"] != "skipped":
            ran.add(record["case"])
        if record["outcome"] in ("failed", "error"):
            result.killed[record["case"]] = True
    result.skipped = [c for c in kills if c not in ran]
    for c in result.skipped:
        result.killed[c] = None
    return result


def _run_parallel(mutants: dict[str, Mutant], workers: int, hardware: list[str] | tuple[str, ...]) -> list[MutantResult]:
    """Deal the mutants out round-robin to `workers` child selftests and merge their results."""
    import json
    import subprocess
    import sys
    import tempfile

    ids = list(mutants)
    groups = [ids[i::workers] for i in range(workers) if ids[i::workers]]
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for n, group in enumerate(groups):
            out = Path(tmp) / f"{n}.json"
            cmd = [sys.executable, "-m", "qcert.conformance.cli", "selftest", "--workers", "1", "--json", str(out),
                   *[a for m in group for a in ("--mutant", m)], *hw.pytest_args(hardware)]
            procs.append((group, out, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                        text=True)))
        rows: dict[str, dict] = {}
        for group, out, proc in procs:
            log, _ = proc.communicate()
            if out.exists():
                rows.update({r["mutant"]: r for r in json.loads(out.read_text())})
            for m in group:
                rows.setdefault(m, {"killed": {}, "problem": f"worker exited {proc.returncode}:\n{log[-2000:]}",
                                    "seconds": 0.0})
    return [MutantResult(mutants[m], rows[m]["killed"], rows[m]["problem"], rows[m]["seconds"],
                         rows[m].get("skipped", [])) for m in ids]
