"""NVIDIA ModelOpt (`quant_method: "modelopt"`): filled in by the NVFP4/FP8 work (issue 5/6)."""

from ..errors import QuantConfigError
from .base import register


@register("modelopt")
def parse(qc: dict, hf_quant_config, family: str):
    raise QuantConfigError("config.json: quant_method 'modelopt' is recognised but not implemented yet")
