"""e8m0 scales decoded with the wrong exponent bias (2^(u-126) instead of 2^(u-127)) in the engine's
MXFP4 linear path: every quantized weight comes out twice as large."""

from qcert.conformance.mutants import Mutant
from qcert.engine.quant import methods

_forward = methods.linear_forward


def off_by_one(layer, x):
    if layer.scheme.format != "mxfp4":
        return _forward(layer, x)
    return methods.call_op(layer, "mxfp4_linear", x, layer.weight, layer.weight_scale + 1, layer.bias,
                           act_qdq=layer.scheme.activation == "mxfp4")


MUTANT = Mutant(
    id="mxfp4/scale-bias-off-by-one",
    description="e8m0 exponent bias off by one in the MXFP4 linear",
    upstream="qcert (numerics)",
    kills=["numerics/quark-mxfp4-w4a16-matches-dequantized", "numerics/quark-mxfp4-w4a4-close-to-dequantized"],
    patches=[("qcert.engine.quant.methods", "linear_forward", off_by_one)],
)
