"""Engine arguments taken leniently: unknown keywords dropped, unknown dtypes read as bfloat16, and
the backend overrides handed out as a mutable dict shared with the caller."""

import torch

from qcert.conformance.mutants import Mutant
from qcert.engine import args

_normalize = args.normalize_args


def drop_unknown(**kwargs):
    known = {"device", "dtype", "shared_expert_fusion", "backends", "check_available"}
    return _normalize(**{k: v for k, v in kwargs.items() if k in known})


MUTANT = Mutant(
    id="args/lenient",
    description="unknown keywords ignored, bad dtypes defaulted, backends mutable",
    upstream="qcert (bad input)",
    kills=["args/unknown-keyword", "args/bad-values", "args/defaults"],
    patches=[("qcert.engine.args", "normalize_args", drop_unknown),
             ("qcert.engine.args", "_normalize_dtype", lambda value: args.DTYPES.get(value, torch.bfloat16)),
             ("qcert.engine.args", "_normalize_backends", lambda value: dict(value or {}))],
)
