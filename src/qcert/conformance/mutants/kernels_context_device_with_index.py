"""The kernel context records the device as a string with its index (`cuda:0`) where the backends'
capability checks compare the bare type (`cuda`): every GPU kernel reports itself unavailable and the
registry quietly runs the torch reference on the GPU. Numbers stay right; the kernels never run."""

from qcert.conformance.mutants import Mutant
from qcert.kernels import registry

_from_tensor = registry.OpContext.from_tensor.__func__


def from_tensor_with_index(cls, x, **shapes):
    ctx = _from_tensor(cls, x, **shapes)
    if x.device.type != "cpu":
        ctx.device_type = str(x.device)  # "cuda:0"
    return ctx


MUTANT = Mutant(
    id="kernels/context-device-with-index",
    description="the kernel context's device is 'cuda:0', so every GPU backend's check fails and the reference runs",
    upstream="sglang#22543 (a device string with an index silently turned features off)",
    kills=["numerics/gpu-forward-matches-cpu", "certify/gpu-loads-and-runs"],
    patches=[("qcert.kernels.registry", "OpContext.from_tensor", classmethod(from_tensor_with_index))],
)
