"""Quantization primitives: activation (QuantReLU), weight quantizers, surgery."""
from .quant_relu import QuantReLU, check_bits

__all__ = ['QuantReLU', 'check_bits']
