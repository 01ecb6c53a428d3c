"""What the CLI prints: rich on a terminal, plain lines otherwise (CI logs, pipes)."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import pytest

from qcert.conformance import plugin
from qcert.conformance.records import OUTCOMES, is_ok

_STYLE = {"expected": "green", "skipped": "yellow"}


def _console() -> Any:
    from rich.console import Console

    # Bound to the real stdout now: the CLI redirects sys.stdout to swallow pytest's own output.
    return Console(file=sys.stdout, highlight=False)


def _is_tty() -> bool:
    return sys.stdout.isatty()


class Progress:
    """pytest plugin object for `qcert run`: one line per case item, or a rich progress bar."""

    def __init__(self) -> None:
        self.tty = _is_tty()
        self.stream = sys.stdout
        self.result: dict[str, Any] | None = None
        self._config: pytest.Config | None = None
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "Progress":
        if self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn

            # No auto refresh: a refresh thread would write while pytest captures fd 1 during a test.
            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[last]}"), console=_console(), auto_refresh=False,
                            transient=True)
            self._task = self._bar.add_task("qcert", total=None, last="")
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def pytest_configure(self, config: pytest.Config) -> None:
        self._config = config

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._set_total(sum(plugin.case_props(i) is not None for i in session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._set_total(len(ids))

    def _set_total(self, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, total=total)
            self._bar.refresh()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown" or self._config is None:
            return
        record = plugin.session_records(self._config).record(report.nodeid)
        if record is None:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=1, last=f"{record['id']}: {record['verdict']}")
            self._bar.refresh()
        else:
            self.stream.write(f"{record['verdict']:<16} {record['outcome']:<8} {record['id']}\n")
            self.stream.flush()

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.result = plugin.session_result(config)


def summary(data: dict[str, Any]) -> None:
    """Per-case table, then every item that is not as expected, then one verdict line."""
    rows = []
    by_case: dict[str, list[dict[str, Any]]] = {}
    for r in data["records"]:
        by_case.setdefault(r["case"], []).append(r)
    for case_id, records in by_case.items():
        counts = Counter(r["outcome"] for r in records)
        bad = [r for r in records if not is_ok(r["verdict"])]
        rows.append((case_id, [str(counts[o]) for o in OUTCOMES], bad[0]["verdict"] if bad else "ok"))
    bad_items = [r for r in data["records"] if not is_ok(r["verdict"])]
    s = data["summary"]
    verdict_line = (f"{'PASS' if s['ok'] else 'FAIL'}: {s['total']} items, "
                    + ", ".join(f"{n} {v}" for v, n in s["verdicts"].items())
                    + f" (engine {data['engine']} {data['engine_version']})")
    if _is_tty():
        from rich.table import Table

        table = Table("case", *OUTCOMES, "verdict", title="qcert")
        for case_id, counts, verdict in rows:
            table.add_row(case_id, *counts, f"[{_STYLE.get(verdict, 'green' if verdict == 'ok' else 'red')}]{verdict}")
        console = _console()
        console.print(table)
        for r in bad_items:
            console.print(f"[red]{r['verdict']}[/red] {r['id']}: {r['message'].splitlines()[0] if r['message'] else ''}")
        for p in data["problems"]:
            console.print(f"[red]problem[/red] {p}")
        console.print(f"[{'green' if s['ok'] else 'red'}]{verdict_line}")
        return
    print(f"{'case':<44} " + " ".join(f"{o:>7}" for o in OUTCOMES) + "  verdict")
    for case_id, counts, verdict in rows:
        print(f"{case_id:<44} " + " ".join(f"{c:>7}" for c in counts) + f"  {verdict}")
    for r in bad_items:
        print(f"{r['verdict']} {r['id']}: {r['message'].splitlines()[0] if r['message'] else ''}")
    for p in data["problems"]:
        print(f"problem {p}")
    print(verdict_line)


def case_list(cases: list[dict[str, Any]]) -> None:
    if _is_tty():
        from rich.table import Table

        table = Table("case", "items", "hardware", "features", "statement")
        for c in cases:
            table.add_row(c["case"], str(len(c["items"])), c["hardware"] or "", ", ".join(c["features"]), c["statement"])
        _console().print(table)
    else:
        for c in cases:
            print(f"{c['case']}\t{len(c['items'])}\t{c['hardware'] or '-'}\t{','.join(c['features'])}\t{c['statement']}")
    print(f"{len(cases)} cases, {sum(len(c['items']) for c in cases)} items")


def selftest_table(results: list[Any]) -> None:
    rows = []
    marks = {True: "", False: " (SURVIVED)", None: " (needs hardware: not run here)"}
    for r in results:
        cases = ", ".join(f"{c}{' (every item skipped here)' if c in r.skipped else marks[k]}"
                          for c, k in r.killed.items()) or ", ".join(r.mutant.kills)
        status = "hw" if r.ok and r.hardware_only else ("yes" if r.ok else ("ERROR" if r.problem else "NO"))
        rows.append((r.mutant.id, cases, status, f"{r.seconds:.2f}s"))
    if _is_tty():
        from rich.table import Table

        table = Table("mutant", "cases", "killed?", "time", title="qcert selftest")
        for mutant_id, cases, killed, secs in rows:
            colour = {"yes": "green", "hw": "yellow"}.get(killed, "red")
            table.add_row(mutant_id, cases, f"[{colour}]{killed}", secs)
        _console().print(table)
    else:
        for mutant_id, cases, killed, secs in rows:
            print(f"{killed:<6} {mutant_id:<36} {secs:>7}  {cases}")
    for r in results:
        if r.problem:
            print(f"{r.mutant.id}: {r.problem}")
    survived = sum(not r.ok for r in results)
    hardware_only = sum(r.ok and r.hardware_only for r in results)
    print(f"{len(results)} mutants, {len(results) - survived - hardware_only} killed, {survived} not killed"
          + (f", {hardware_only} naming only hardware cases (hw: run with --hardware)" if hardware_only else ""))
