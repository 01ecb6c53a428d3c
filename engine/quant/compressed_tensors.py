"""compressed-tensors (`quant_method: "compressed-tensors"`): filled in by the NVFP4/FP8 work (issue 5)."""

from ..errors import QuantConfigError
from .base import register


@register("compressed-tensors")
def parse(qc: dict, hf_quant_config, family: str):
    raise QuantConfigError("config.json: quant_method 'compressed-tensors' is recognised but not implemented yet")
