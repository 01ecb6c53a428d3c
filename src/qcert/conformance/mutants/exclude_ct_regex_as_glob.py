"""compressed-tensors `re:` ignore entries treated as literal names (or globs): regexes match nothing."""

from fnmatch import fnmatchcase

from qcert.conformance.mutants import Mutant


def glob_only(entry, name):
    return fnmatchcase(name, entry)


MUTANT = Mutant(
    id="exclude-ct/regex-as-glob",
    description="compressed-tensors ignore entries matched as globs, `re:` not understood",
    upstream="sglang#22543",
    kills=["exclude-ct/regex"],
    patches=[("qcert.engine.quant.compressed_tensors", "match_exact_or_regex", glob_only)],
)
