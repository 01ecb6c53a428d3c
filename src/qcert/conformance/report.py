"""Reports: JSON is the source of truth; JUnit XML and Markdown are derived from it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qcert.conformance import adapters, hardware
from qcert.conformance.contract import CONTRACT_VERSION
from qcert.conformance.records import OUTCOMES, Collector, is_ok

SCHEMA = "qcert-report/1"


def qcert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qcert")
    except PackageNotFoundError:
        return "0+unknown"


def engine_version(name: str) -> str:
    cls = adapters.resolve(name)
    value = getattr(cls, "version", None)
    if not isinstance(value, str):  # an instance property: ask an instance
        value = str(getattr(cls(), "version", "unknown"))
    return value


def build(collector: Collector, *, engine: str, requested: list[str], mutant: str | None = None,
          started: str | None = None, checkpoint: str | None = None) -> dict[str, Any]:
    version = engine_version(engine)
    records = [dict(r, engine_version=version) for r in collector.records]
    summary = {
        "total": len(records),
        "outcomes": {o: sum(r["outcome"] == o for r in records) for o in OUTCOMES},
        "verdicts": dict(sorted(Counter(r["verdict"] for r in records).items())),
        "problems": len(collector.problems),
    }
    summary["ok"] = not collector.problems and all(is_ok(r["verdict"]) for r in records)
    return {
        "schema": SCHEMA,
        "qcert_version": qcert_version(),
        "contract_version": CONTRACT_VERSION,
        "engine": engine,
        "engine_version": version,
        "hardware": requested,
        "mutant": mutant,
        "checkpoint": _checkpoint(checkpoint),
        "platform": hardware.platform_info(),
        "started": started or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "summary": summary,
        "problems": list(collector.problems),
        "records": records,
    }


def _checkpoint(path: str | None) -> dict[str, Any] | None:
    """What a certification report names: the checkpoint and the hash of its config and headers."""
    if not path:
        return None
    from qcert.engine.checkpoint import Checkpoint

    try:
        return {"path": str(path), "fingerprint": Checkpoint(path).fingerprint()}
    except ValueError as e:
        return {"path": str(path), "fingerprint": None, "error": str(e)}


def write_all(data: dict[str, Any], *, json: str | None = None, junit: str | None = None,
              markdown: str | None = None) -> None:
    for path, render in ((json, to_json), (junit, to_junit), (markdown, to_markdown)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(render(data), encoding="utf-8")


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def to_junit(data: dict[str, Any]) -> str:
    """JUnit for CI display. Expected failures show as skipped ("expected failure: ..."), unexpected
    passes as failures, so neither hides inside a green count."""
    records = data["records"]
    bad = [r for r in records if not _ok(r)]
    suite = ET.Element("testsuite", name=f"qcert[{data['engine']}]", tests=str(len(records) + len(data["problems"])),
                       failures=str(len(bad) + len(data["problems"])), errors="0",
                       skipped=str(sum(_ok(r) and r["outcome"] != "passed" for r in records)),
                       time=f"{sum(r['duration'] for r in records):.3f}", timestamp=data["started"])
    props = ET.SubElement(suite, "properties")
    for key in ("qcert_version", "contract_version", "engine", "engine_version"):
        ET.SubElement(props, "property", name=key, value=str(data[key]))
    ET.SubElement(props, "property", name="hardware", value=",".join(data["hardware"]) or "none")
    for r in records:
        tc = ET.SubElement(suite, "testcase", classname=r["case"], name=r["id"], time=f"{r['duration']:.3f}")
        if r["verdict"] == "unexpected-pass":
            ET.SubElement(tc, "failure", message=f"unexpected pass (expected {r['expected']}: {r['reason']})")
        elif not _ok(r):
            failure = ET.SubElement(tc, "failure", message=f"{r['verdict']}: {_first_line(r['message'])}")
            failure.text = r["message"]
        elif r["outcome"] in ("failed", "error"):
            ET.SubElement(tc, "skipped", message=f"expected failure: {r['reason']}").text = r["message"]
        elif r["outcome"] == "skipped":
            ET.SubElement(tc, "skipped", message=r["message"] or r["reason"] or "skipped")
    for problem in data["problems"]:
        tc = ET.SubElement(suite, "testcase", classname="qcert", name="configuration")
        ET.SubElement(tc, "failure", message=_first_line(problem)).text = problem
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def to_markdown(data: dict[str, Any]) -> str:
    s = data["summary"]
    lines = [
        f"# qcert report: {data['engine']} {data['engine_version']}",
        "",
        f"qcert {data['qcert_version']}, contract {data['contract_version']}, hardware: "
        f"{', '.join(data['hardware']) or 'none requested'}, started {data['started']}"
        + (f", mutant {data['mutant']}" if data["mutant"] else ""),
        "",
        *([f"checkpoint `{data['checkpoint']['path']}`, sha256 of config and headers "
           f"`{data['checkpoint']['fingerprint']}`", ""] if data.get("checkpoint") else []),
        f"**{'PASS' if s['ok'] else 'FAIL'}**: {s['total']} items; "
        + ", ".join(f"{n} {v}" for v, n in s["verdicts"].items()),
        "",
    ]
    lines += [f"- configuration problem: {p}" for p in data["problems"]]
    lines += ["", "| case | items | passed | failed | error | skipped | verdict | note |", "|---|---|---|---|---|---|---|---|"]
    for case_id, rows in _by_case(data["records"]).items():
        counts = Counter(r["outcome"] for r in rows)
        worst = next((r for r in rows if not _ok(r)), None)
        note = _first_line(worst["message"]) if worst else (rows[0]["reason"] or "")
        verdict = worst["verdict"] if worst else "ok"
        lines.append(f"| `{case_id}` | {len(rows)} | " + " | ".join(str(counts[o]) for o in OUTCOMES)
                     + f" | {verdict} | {_cell(note)} |")
    return "\n".join(lines) + "\n"


def _by_case(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["case"], []).append(r)
    return out


def _ok(record: dict[str, Any]) -> bool:
    return is_ok(record["verdict"])


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:200] if (text or "").strip() else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
