"""Kernel backends asked for by name (engine argument `backends={op: name}`): one that cannot run
here is an error naming it and why, never a silent fall back to another backend (a benchmark or a
certification would otherwise measure a different kernel than the one it names)."""

import torch

from qcert import fixtures
from qcert.conformance.case import case

IDS = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])


@case("kernels/requested-backend-unavailable-is-an-error",
      "a kernel backend requested by name that cannot run on this device is an error naming the backend, "
      "not a silent fall back to another one",
      features=["kernels", "mxfp4", "aiter"], raises=(ValueError, "'aiter'"))
def test_requested_backend_unavailable(engine, expected_error):
    # aiter runs only on ROCm GPUs: on this (CPU) device the request cannot be honoured
    with expected_error:
        model = engine.load(fixtures.cached("llama", "ct-mxfp4"), backends={"mxfp4_linear": "aiter"})
        model.forward(IDS)
