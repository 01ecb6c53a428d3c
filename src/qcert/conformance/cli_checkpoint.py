"""`qcert inspect`, `qcert certify` and `qcert fixtures build`: the commands that take a checkpoint."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections import Counter
from pathlib import Path

from qcert.conformance import hardware


class _Usage(Exception):
    pass


def _checkpoint(path: str) -> Path:
    """A readable checkpoint directory, or a usage error naming what is wrong with it."""
    from qcert.engine.checkpoint import Checkpoint
    from qcert.engine.errors import QcertError

    try:
        Checkpoint(path)
    except (QcertError, OSError) as e:
        raise _Usage(str(e)) from None
    return Path(path)


# --- inspect ------------------------------------------------------------------------------------------

def inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--load", action="store_true", help="load the weights too (default: config and headers only)")
    p.add_argument("--forward", action="store_true",
                   help="load, then run a decode- and a prefill-sized forward, so the report names the backend "
                        "(kernel) each op ran")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--engine", default="builtin", help="engine adapter (default builtin)")
    p.add_argument("--device", default="cpu", help="device for --load and --forward (default cpu)")


def inspect(ns: argparse.Namespace) -> int:
    from qcert.conformance import adapters
    from qcert.conformance.checkpoints import short_forwards

    path = _checkpoint(ns.checkpoint)
    engine = adapters.resolve(ns.engine)()
    try:
        if ns.load or ns.forward:
            model = engine.load(path, device=ns.device)
            if ns.forward:
                short_forwards(model, path, prefill=True)
            report = model.report()
        else:
            report = engine.plan(path, device=ns.device)
    except ValueError as e:
        print(f"qcert inspect: {e}", file=sys.stderr)
        return 1
    if ns.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report)
    return 0


def print_report(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    con.print(f"[bold]{r['checkpoint']}[/]  {r['architecture']} ({r['family']}), quant method: {r['quant_method']}")
    schemes = Counter(m["scheme"] for m in r["modules"] if m["kind"] == "linear")
    con.print("linear schemes: " + ", ".join(f"{s} x{n}" for s, n in schemes.most_common()))
    t = Table("module", "kind", "scheme", "excluded by / note", title="modules (linears and dequantized)")
    for m in r["modules"]:
        if m["kind"] == "linear" or m["dequantized_at_load"]:
            note = m["excluded_by"] or ("dequantized at load" if m["dequantized_at_load"] else "")
            t.add_row(m["name"], m["kind"], m["scheme"], note)
    con.print(t)
    con.print("fused modules: " + (", ".join(f"{k} <- {'+'.join(v)}" for k, v in r["fused_modules"].items()) or "none"))
    con.print(f"fusion: shared_experts={r['fusion']['shared_experts']} ({r['fusion']['reason']})")
    for h in r["post_load_hooks"]:
        con.print(f"post-load hook {h['name']}: {'runs' if h['ran'] else 'skipped'} ({h['reason']})")
    reasons = Counter(u["reason"] for u in r["unclaimed"])
    for reason, n in reasons.items():
        con.print(f"unclaimed: {n} tensors: {reason}")
    con.print(f"missing: {len(r['missing'])}" + (f" e.g. {r['missing'][0]['tensor']}" if r["missing"] else ""))
    con.print(f"unmatched exclude entries: {r['unmatched_exclude_entries'] or 'none'}")
    for key in ("backends", "transforms"):
        if r.get(key):
            con.print(f"{key}: {r[key]}")
    for note in r["notes"]:
        con.print(f"note: {note}")


# --- certify ------------------------------------------------------------------------------------------

def certify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory to certify")
    p.add_argument("--engine", default="builtin", help="engine adapter (default builtin)")
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--junit", help="write JUnit XML here")
    p.add_argument("--markdown", help="write a Markdown report here")
    p.add_argument("--hardware", action="append", default=[], choices=hardware.KINDS,
                   help="also load, run and reload the checkpoint on this accelerator (it must be present); "
                        "without it those cases are reported as skipped")


def certify(ns: argparse.Namespace) -> int:
    import pytest

    from qcert.conformance import output, selftest
    from qcert.engine.checkpoint import Checkpoint

    path = _checkpoint(ns.checkpoint)
    folder = selftest.cases_dir()
    args = [str(folder / "test_certify.py"), *selftest.base_args(folder), "--engine", ns.engine,
            "--qcert-checkpoint", str(path.resolve()), *hardware.pytest_args(ns.hardware)]
    for flag, value in (("--qcert-json", ns.json), ("--qcert-junit", ns.junit), ("--qcert-markdown", ns.markdown)):
        if value:
            args += [flag, value]
    progress = output.Progress()
    captured = io.StringIO()
    with progress, contextlib.redirect_stdout(captured):
        rc = int(pytest.main(args, plugins=[progress]))
    if progress.result is None or rc not in (0, 1):
        sys.stderr.write(captured.getvalue()[-6000:])
        return 1
    print(f"checkpoint {path} (fingerprint {Checkpoint(path).fingerprint()[:16]})")
    output.summary(progress.result)
    return 0 if rc == 0 and progress.result["summary"]["ok"] else 1


# --- fixtures build -----------------------------------------------------------------------------------

def fixtures_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="fixtures_command", required=True, metavar="ACTION")
    b = sub.add_parser("build", help="write a fixture checkpoint")
    b.add_argument("out", help="output directory (replaced if it exists)")
    b.add_argument("--family", required=True, help="model family, e.g. deepseek-v3, glm-5, kimi-k2.5")
    b.add_argument("--format", dest="fmt", default="bf16", help="bf16 or a quantized format, e.g. quark-mxfp4")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--shards", type=int, default=1)
    b.add_argument("--twin", action="store_true", help="also write OUT.twin with the dequantized float32 weights")
    b.add_argument("--exclude", action="append", help="exclude entry as written in the config (repeatable)")
    b.add_argument("--act", default="fp4", help="activation quantization for quark (fp4 or none)")
    b.add_argument("--set", action="append", default=[], metavar="KEY=INT",
                   help="size parameter, e.g. --set experts=384 --set layers=4 (repeatable)")
    r = sub.add_parser("replica", help="write a full-size header-only replica (sparse files, no data)")
    r.add_argument("out", help="output directory (replaced if it exists)")
    r.add_argument("--family", required=True, help="deepseek-v3, kimi-k2.5 or glm-5")
    r.add_argument("--format", dest="fmt", default="quark-mxfp4", help="quark-mxfp4 (default) or bf16")
    r.add_argument("--exclude", action="append", help="exclude entry as written in the config (repeatable)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=INT", help="override a size, e.g. layers=4")


def fixtures_cmd(ns: argparse.Namespace) -> int:
    from qcert import fixtures
    from qcert.fixtures.replica import replica

    params = {}
    for item in ns.set:
        key, sep, value = item.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            raise _Usage(f"--set {item!r}: expected KEY=INTEGER")
        params[key] = int(value)
    try:
        if ns.fixtures_command == "replica":
            path = replica(ns.out, ns.family, ns.fmt, exclude=ns.exclude, **params)
        else:
            path = fixtures.build(ns.out, ns.family, ns.fmt, seed=ns.seed, shards=ns.shards, twin=ns.twin,
                                  exclude=ns.exclude, act=None if ns.act == "none" else ns.act, **params)
    except (ValueError, TypeError) as e:
        raise _Usage(str(e)) from None
    print(f"wrote {path}" + (f" and {path}.twin" if getattr(ns, "twin", False) else ""))
    return 0
