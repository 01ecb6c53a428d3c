"""Exclude/ignore-list matching, one function per producer's documented semantics.

- Quark `exclude` and compressed-tensors `ignore`: an entry is an exact module name, or a `re:` regex
  tried with re.match (anchored at the start only). No globs, no substrings, case-sensitive.
- ModelOpt `exclude_modules` / `ignore`: fnmatch globs (exact names are globs too), case-sensitive.
- ModelOpt diffusion: the glob is tried on the full path AND on its first component.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from functools import lru_cache


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"exclude entry 're:{pattern}' is not a valid regular expression: {e}") from None


def match_exact_or_regex(entry: str, name: str) -> bool:
    if entry.startswith("re:"):
        return _regex(entry[3:]).match(name) is not None
    return entry == name


def match_glob(entry: str, name: str) -> bool:
    return fnmatchcase(name, entry)


def match_glob_or_first_component(entry: str, name: str) -> bool:
    return fnmatchcase(name, entry) or fnmatchcase(name.split(".", 1)[0], entry)


def first_match(entries: list[str], name: str, matcher) -> str | None:
    """The first entry (in list order) that matches `name`."""
    if matcher is _EXACT_OR_REGEX:  # the common case, indexed (a 384-expert model has ~10^5 names)
        return _ExactOrRegexIndex.of(tuple(entries)).first(name)
    for entry in entries:
        if matcher(entry, name):
            return entry
    return None


_EXACT_OR_REGEX = match_exact_or_regex  # captured: a replaced matcher (a mutant) takes the slow path


class _ExactOrRegexIndex:
    """Exact names in a dict and `re:` entries in order; the earliest matching entry wins, as in a scan."""

    def __init__(self, entries: tuple[str, ...]):
        self.exact: dict[str, int] = {}
        self.regexes: list[tuple[int, str]] = []
        for i, e in enumerate(entries):
            if e.startswith("re:"):
                self.regexes.append((i, e))
            else:
                self.exact.setdefault(e, i)

    @staticmethod
    @lru_cache(maxsize=64)
    def of(entries: tuple[str, ...]) -> "_ExactOrRegexIndex":
        return _ExactOrRegexIndex(entries)

    def first(self, name: str) -> str | None:
        best = self.exact.get(name)
        for i, entry in self.regexes:
            if best is not None and i > best:
                break
            if _regex(entry[3:]).match(name):
                return entry
        return name if best is not None else None


LM_PREFIX = "language_model."


def language_model_forms(entries: list[str]) -> list[str]:
    """Each entry in both forms, with and without one leading `language_model.` (regexes too).

    Multimodal wrappers (Kimi-K2.5) write exclude entries for the text model with the prefix; the engine
    may name its modules either way. Order is kept and duplicates are dropped, first occurrence wins.
    """
    out: list[str] = []
    for entry in entries:
        out.append(entry)
        body, tag = (entry[3:], "re:") if entry.startswith("re:") else (entry, "")
        if body.startswith(LM_PREFIX):
            out.append(tag + body[len(LM_PREFIX):])
    return dedupe(out)


def dedupe(entries: list[str]) -> list[str]:
    return list(dict.fromkeys(entries))
