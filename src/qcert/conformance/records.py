"""Per-case records assembled from pytest's phase reports (on the controller under xdist)."""

from __future__ import annotations

from typing import Any

import pytest

OUTCOMES = ("passed", "failed", "error", "skipped")
MAX_MESSAGE = 2000


def phase_outcome(report: pytest.TestReport) -> str:
    """A phase's real outcome: failures outside the test body are errors (the case could not run)."""
    if report.passed:
        return "passed"
    if report.skipped:
        return "skipped"
    return "failed" if report.when == "call" else "error"


def phase_message(report: pytest.TestReport, call: pytest.CallInfo[Any]) -> str:
    excinfo = call.excinfo
    if excinfo is None:
        return ""
    if excinfo.errisinstance(pytest.skip.Exception) or excinfo.errisinstance(pytest.fail.Exception):
        text = str(excinfo.value.msg)
    else:
        text = excinfo.exconly()
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " ..."


def verdict(outcome: str, expected: str) -> str:
    if outcome == expected:
        return "expected"
    if outcome == "skipped":
        return "skipped"  # skipped by the case itself (e.g. a backend is not installed)
    return f"unexpected-{'fail' if outcome == 'failed' else outcome.removesuffix('ed')}"


def is_ok(verdict_word: str) -> bool:
    return verdict_word in ("expected", "skipped")


class Collector:
    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []

    def add(self, report: pytest.TestReport, props: dict[str, Any] | None, phase: dict[str, Any] | None) -> None:
        if props is None or phase is None:
            return
        entry = self._items.setdefault(report.nodeid, {"props": props, "phases": [], "duration": 0.0})
        entry["phases"].append(phase)
        entry["duration"] += report.duration

    @property
    def records(self) -> list[dict[str, Any]]:
        return [self._record(e) for e in self._items.values()]

    def record(self, nodeid: str) -> dict[str, Any] | None:
        entry = self._items.get(nodeid)
        return None if entry is None else self._record(entry)

    @staticmethod
    def _record(entry: dict[str, Any]) -> dict[str, Any]:
        props = entry["props"]
        outcome, message = "passed", ""
        for phase in entry["phases"]:
            if phase["outcome"] != "passed":
                outcome, message = phase["outcome"], phase["message"]
                break
        if not entry["phases"] or entry["phases"][-1]["when"] != "teardown":
            # The worker died mid-item: that is an error, never a silent pass.
            if outcome == "passed":
                outcome, message = "error", "the item did not finish (worker crashed?)"
        expected = props["expected"]
        if outcome != "passed" and not message:
            message = props.get("reason") or ""
        elif expected != "passed" and outcome == expected:
            message = f"expected {expected}: {props['reason']} -- {message}".rstrip(" -")
        return {
            "id": props["id"],
            "case": props["case"],
            "statement": props["statement"],
            "refs": props["refs"],
            "features": props["features"],
            "hardware": props["hardware"],
            "engine": props["engine"],
            "device": props["device"],
            "outcome": outcome,
            "expected": expected,
            "verdict": verdict(outcome, expected),
            "reason": props["reason"],
            "link": props["link"],
            "duration": round(entry["duration"], 4),
            "message": message,
        }
