"""Exclude entries matched as globs / substrings instead of exact names and `re:` (re.match)."""

from fnmatch import fnmatchcase

from qcert.conformance.mutants import Mutant


def loose_match(entry, name):
    body = entry[3:] if entry.startswith("re:") else entry
    return body in name or fnmatchcase(name, body)


MUTANT = Mutant(
    id="quark/exclude-substring-or-glob",
    description="exclude entries match as substrings or globs",
    upstream="sglang#22543",
    kills=["exclude-remap/regex-anchored-at-start", "exclude-remap/globs-match-nothing"],
    patches=[("qcert.engine.quant.matching", "match_exact_or_regex", loose_match)],
)
