"""Per-engine expectations: which cases an engine is known to fail or skip, and why.

File format (conformance/expectations/<engine>.toml):

    [[expect]]
    id = "device/strip-index"        # a case id, or one item: "device/strip-index[cuda:1]"
    outcome = "fail"                 # fail | error | skip
    reason = "index kept in the type string"
    link = "https://github.com/..."  # optional
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

# Outcome words in the file -> record outcome words.
OUTCOMES = {"fail": "failed", "error": "error", "skip": "skipped"}
_KEYS = {"id", "outcome", "reason", "link"}


class ExpectationsError(ValueError):
    pass


@dataclass(frozen=True)
class Expectation:
    id: str
    outcome: str  # record word: failed | error | skipped
    reason: str
    link: str | None = None


def default_path(engine: str) -> Path:
    return Path(__file__).parent / "expectations" / f"{engine}.toml"


def load(path: Path) -> dict[str, Expectation]:
    """Expectations by id; a malformed file raises ExpectationsError naming the file and entry."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ExpectationsError(f"{path}: no such expectations file") from None
    except tomllib.TOMLDecodeError as e:
        raise ExpectationsError(f"{path}: not valid TOML: {e}") from None
    extra = set(data) - {"expect"}
    if extra:
        raise ExpectationsError(f"{path}: unknown top-level key(s) {', '.join(sorted(extra))}")
    out: dict[str, Expectation] = {}
    for n, entry in enumerate(data.get("expect", []), 1):
        where = f"{path}: [[expect]] #{n}"
        bad = set(entry) - _KEYS
        if bad:
            raise ExpectationsError(f"{where}: unknown key(s) {', '.join(sorted(bad))}")
        for key in ("id", "outcome", "reason"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ExpectationsError(f"{where}: '{key}' must be a non-empty string")
        if entry["outcome"] not in OUTCOMES:
            raise ExpectationsError(f"{where}: outcome {entry['outcome']!r} is not one of {', '.join(OUTCOMES)}")
        if entry["id"] in out:
            raise ExpectationsError(f"{where}: id {entry['id']!r} is listed twice")
        out[entry["id"]] = Expectation(entry["id"], OUTCOMES[entry["outcome"]], entry["reason"], entry.get("link"))
    return out


def lookup(table: dict[str, Expectation], record_id: str, case_id: str) -> Expectation | None:
    """The entry for one item: its own `case[param]` entry wins over the case-wide one."""
    return table.get(record_id) or table.get(case_id)


def case_id_of(entry_id: str) -> str:
    return entry_id.split("[", 1)[0]
