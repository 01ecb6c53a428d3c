"""Errors the engine raises for bad input. Each names the file, tensor, field or argument at fault."""


class QcertError(ValueError):
    """Base for every input error qcert reports (a ValueError, so callers can catch either)."""


class CheckpointError(QcertError):
    """A checkpoint directory, config file or safetensors file is unusable."""


class QuantConfigError(QcertError):
    """A quantization config is malformed or asks for something qcert does not support."""


class PlanError(QcertError):
    """Checkpoint tensors do not fit the model the config describes (shape, dtype, scheme)."""


class UpdateError(QcertError):
    """A weight update was refused; the model's weights were left unchanged."""
