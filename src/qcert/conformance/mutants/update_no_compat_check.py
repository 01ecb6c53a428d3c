"""update_weights_from_disk skips the compatibility check (same parameters, schemes and fusion as the
loaded model) and writes whatever the new checkpoint's plan maps onto parameters of the same names."""

from qcert.conformance.mutants import Mutant


def no_check(self, new):
    return None


MUTANT = Mutant(
    id="weight-update/no-compatibility-check",
    description="update accepts a checkpoint with another quantization scheme",
    upstream="sglang#22204",
    kills=["weight-update/incompatible-config-refused"],
    patches=[("qcert.engine.loader", "LoadedModel._check_compatible", no_check)],
)
