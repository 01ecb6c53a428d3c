"""The `qcert` command. A subcommand is one `Command` in COMMANDS: a function adding its arguments and
a function running it (returning the exit code). Exit codes: 0 as expected, 1 something unexpected,
2 unusable arguments (one line on stderr, never a traceback)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from qcert.conformance import hardware, output


class UsageError(Exception):
    """Bad arguments found after parsing: reported as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default prints usage on many lines
        self.exit(2, f"{self.prog}: error: {message}\n")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --- list -------------------------------------------------------------------------------------------

def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the cases as JSON")


def _list(ns: argparse.Namespace) -> int:
    from qcert.conformance import plugin, selftest

    folder = selftest.cases_dir()
    rc, items, out = selftest.collect(folder, ["--qcert-no-expectations"])
    if rc not in (0, 5):
        sys.stderr.write(out[-4000:])
        return 1
    cases: dict[str, dict[str, Any]] = {}
    for item in items:
        props = plugin.case_props(item)
        entry = cases.setdefault(props["case"], {k: props[k] for k in
                                                 ("case", "statement", "refs", "features", "hardware", "raises")})
        entry.setdefault("module", str(Path(item.path).relative_to(folder)))
        entry.setdefault("items", []).append(props["id"])
    if ns.json:
        print(json.dumps(list(cases.values()), indent=2))
    else:
        output.case_list(list(cases.values()))
    return 0


# --- run --------------------------------------------------------------------------------------------

def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default="builtin", help="engine adapter (default builtin)")
    p.add_argument("--hardware", action="append", default=[], choices=hardware.KINDS,
                   help="run the cases that need this accelerator (repeatable)")
    p.add_argument("-k", dest="keyword", help="pytest -k expression selecting cases")
    p.add_argument("-n", dest="workers", help="pytest-xdist workers (a number or 'auto')")
    p.add_argument("--case", action="append", help="run only this case id (repeatable)")
    p.add_argument("--expectations", help="expectations file (default: the engine's own, if any)")
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--junit", help="write JUnit XML here")
    p.add_argument("--markdown", help="write a Markdown summary here")


def _run(ns: argparse.Namespace) -> int:
    import pytest

    from qcert.conformance import adapters, plugin, selftest

    try:
        adapters.resolve(ns.engine)
    except adapters.UnknownEngine as e:
        raise UsageError(str(e)) from None
    if ns.workers is not None:
        if not (ns.workers == "auto" or ns.workers.isdigit()):
            raise UsageError(f"-n {ns.workers!r}: expected a number of workers or 'auto'")
        try:
            import xdist  # noqa: F401
        except ImportError:
            raise UsageError("-n needs pytest-xdist (pip install 'qcert[test]')") from None
    if ns.expectations and not Path(ns.expectations).exists():
        raise UsageError(f"--expectations {ns.expectations}: no such file")
    folder = selftest.cases_dir()
    args = [str(folder), *selftest.base_args(folder), "--engine", ns.engine, *hardware.pytest_args(ns.hardware)]
    for case_id in ns.case or []:
        args += ["--qcert-case", case_id]
    options = {"-k": ns.keyword, "-n": ns.workers, "--qcert-expectations": ns.expectations,
               "--qcert-json": ns.json, "--qcert-junit": ns.junit, "--qcert-markdown": ns.markdown}
    args += [a for flag, value in options.items() if value for a in (flag, value)]
    progress = output.Progress()
    captured = io.StringIO()
    with progress, contextlib.redirect_stdout(captured):
        rc = int(pytest.main(args, plugins=[progress]))
    data = progress.result
    if rc == 4:  # pytest's usage error: its own one-line ERROR message
        raise UsageError(captured.getvalue().strip().splitlines()[-1] if captured.getvalue().strip() else "usage error")
    if rc not in (0, 1, 5) or data is None:
        sys.stderr.write(captured.getvalue()[-6000:])
        return 1
    output.summary(data)
    if rc == 5 or not data["records"]:
        print("no case was selected")
        return 1
    return 0 if rc == 0 and data["summary"]["ok"] else 1


# --- selftest ---------------------------------------------------------------------------------------

def _selftest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mutant", action="append", help="run only this mutant (repeatable)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes (default: 2 where there are 2 cores or more)")
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--hardware", action="append", default=[], choices=hardware.KINDS,
                   help="also run the named cases that need this accelerator (repeatable; it must be present)")


def _selftest(ns: argparse.Namespace) -> int:
    from qcert.conformance import selftest
    from qcert.conformance.mutants import MutantError

    try:
        if ns.workers < 1:
            raise UsageError(f"--workers {ns.workers}: expected 1 or more")
        results = selftest.run(only=ns.mutant, workers=ns.workers, hardware=ns.hardware)
    except MutantError as e:
        if ns.mutant and str(e).startswith("unknown mutant"):
            raise UsageError(str(e)) from None
        print(f"selftest: {e}", file=sys.stderr)
        return 1
    if ns.json:
        rows = [{"mutant": r.mutant.id, "upstream": r.mutant.upstream, "description": r.mutant.description,
                 "killed": r.killed, "skipped": r.skipped, "problem": r.problem, "ok": r.ok,
                 "seconds": round(r.seconds, 3)}
                for r in results]
        Path(ns.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    output.selftest_table(results)
    return 0 if results and all(r.ok for r in results) else 1


# --- new-case ---------------------------------------------------------------------------------------

def _new_case_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="case id, area/name")
    p.add_argument("--statement", help="one line: the behaviour the case checks")
    p.add_argument("--feature", action="append", default=[], help="a feature from features.toml (repeatable)")
    p.add_argument("--ref", action="append", default=[], help="an upstream reference, e.g. sglang#22543")


def _new_case(ns: argparse.Namespace) -> int:
    from qcert.conformance import newcase

    try:
        module = newcase.scaffold(ns.id, statement=ns.statement, features=ns.feature, refs=ns.ref)
    except newcase.NewCaseError as e:
        raise UsageError(str(e)) from None
    print(f"added case {ns.id} to {module} and an expected-fail entry to {newcase.expectations_file()}")
    print(f"next: write the check, see it fail with `qcert run --case {ns.id}`, fix the engine, delete the entry")
    return 0


COMMANDS: list[Command] = [
    Command("list", "list every case with its metadata", _list_args, _list),
    Command("run", "run the conformance cases against an engine", _run_args, _run),
    Command("selftest", "check that every mutant is killed by the cases it names", _selftest_args, _selftest),
    Command("new-case", "scaffold a new (red) case and its expectation entry", _new_case_args, _new_case),
]


def _checkpoint_commands() -> list[Command]:
    from qcert.conformance import cli_checkpoint as c

    def usage(fn):  # their argument errors become this CLI's one-line exit-2 errors
        def run(ns):
            try:
                return fn(ns)
            except c._Usage as e:
                raise UsageError(str(e)) from None
        return run

    return [
        Command("inspect", "show a checkpoint's load plan and report", c.inspect_args, usage(c.inspect)),
        Command("certify", "run the certification cases on one checkpoint", c.certify_args, usage(c.certify)),
        Command("fixtures", "write built-in fixture checkpoints", c.fixtures_args, usage(c.fixtures_cmd)),
    ]


COMMANDS += _checkpoint_commands()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qcert", description="Conformance suite for loading quantized checkpoints.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(handler=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        return ns.handler(ns)
    except UsageError as e:
        print(f"qcert {ns.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
