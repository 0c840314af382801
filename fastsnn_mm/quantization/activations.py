"""Activations that are not ReLU, and what a QANN uses instead.

Read by quantization surgery (which turns ``nn.ReLU`` into QuantReLU and
warns about every type listed here: they stay full precision) and by the
converter (which refuses them, naming the replacement): one table, so the
warning and the refusal always cover the same types.
"""
from torch import nn

#: non-ReLU activation type -> what a convertible model uses instead; in
#: the order the converter reports them (``nn.ReLU6`` before its base
#: ``nn.Hardtanh``)
NON_RELU_ACTIVATIONS = {
    nn.ReLU6: 'QuantReLU', nn.LeakyReLU: 'QuantReLU', nn.PReLU: 'QuantReLU',
    nn.ELU: 'QuantReLU', nn.SELU: 'QuantReLU', nn.CELU: 'QuantReLU',
    nn.GELU: 'QuantReLU', nn.SiLU: 'QuantReLU', nn.Mish: 'QuantReLU',
    nn.Hardswish: 'QuantReLU', nn.Hardsigmoid: 'QuantReLU',
    nn.Sigmoid: 'QuantReLU (or move it into the decode step)',
    nn.Tanh: 'QuantReLU', nn.Hardtanh: 'QuantReLU', nn.Softplus: 'QuantReLU',
    nn.Softmax: 'nothing on the spiking path (move it into the decode step)',
}
