"""ModelOpt exclude_modules read as exact names: globs such as `model.layers.0.self_attn*` match nothing."""

from qcert.conformance.mutants import Mutant


def exact(entry, name):
    return entry == name


MUTANT = Mutant(
    id="exclude-modelopt/exact-only",
    description="ModelOpt exclude entries matched exactly, globs ignored",
    upstream="sglang#22543",
    kills=["exclude-modelopt/globs", "exclude-modelopt/config-json-ignore"],
    patches=[("qcert.engine.quant.modelopt", "match_glob", exact)],
)
