"""NVIDIA ModelOpt (`quant_method: "modelopt"`). LLM checkpoints: FP8 / NVFP4 (issue 5, this module);
diffusion transformers (FLUX): modelopt_diffusion.py (issue 6), picked by the model family."""

from ..errors import QuantConfigError
from .base import register


@register("modelopt")
def parse(qc: dict, hf_quant_config, family: str):
    if family == "flux":
        from .modelopt_diffusion import parse_diffusion

        return parse_diffusion(qc)
    raise QuantConfigError("config.json: quant_method 'modelopt' for LLMs is not implemented yet")
