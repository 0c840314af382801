"""Quantization primitives: activation (QuantReLU), weight quantizers,
surgery, calibration."""
from .calibration import calibrate_alpha
from .call_sites import CallSiteActivation, split_call_sites
from .convertible import make_convertible
from .quant_relu import QuantReLU, check_bits
from .surgery import (
    count_quant_relus,
    count_relus,
    quantize_model,
    quantizer_bits,
    shared_quant_relus,
)
from .weight_quant import (
    APoTWeightQuantizer,
    QuantConv2d,
    QuantLinear,
    UniformWeightQuantizer,
    apot_levels,
    build_weight_quantizer,
    check_weight_bits,
)

__all__ = [
    'QuantReLU', 'check_bits', 'check_weight_bits', 'quantize_model',
    'count_quant_relus', 'count_relus', 'quantizer_bits',
    'shared_quant_relus', 'calibrate_alpha', 'UniformWeightQuantizer',
    'APoTWeightQuantizer', 'apot_levels', 'build_weight_quantizer',
    'QuantConv2d', 'QuantLinear', 'make_convertible', 'split_call_sites',
    'CallSiteActivation'
]
