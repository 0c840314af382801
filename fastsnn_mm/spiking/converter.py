"""QANN -> SNN conversion: one converter for any model built on QuantReLU.

Weights are kept (fake-quantized weights are baked into plain layers), each
QuantReLU becomes an IF neuron whose threshold is its alpha, and the default
number of time steps is 2^b - 1. Non-linearities with no exact spiking
equivalent are refused up front, all of them in one error.
"""
import copy
import fnmatch

from mmengine.logging import print_log
from torch import nn

from ..errors import BadArgumentError, FastSNNError, check_choice, check_int
from ..quantization import QuantReLU
from .fold_bn import fold_batchnorm
from .neurons import NEURONS, IFNeuron
from .runner import (MODES, check_mode, check_time_chunk, check_timesteps,
                     neurons_of, run_timesteps)

#: module type -> what to use instead in a convertible model
UNCONVERTIBLE = {
    nn.MaxPool1d: 'a stride-2 conv or AvgPool', nn.MaxPool2d:
    'a stride-2 conv or AvgPool2d', nn.MaxPool3d: 'a stride-2 conv or AvgPool',
    nn.AdaptiveMaxPool2d: 'AdaptiveAvgPool2d',
    nn.ReLU: "QuantReLU (run fastsnn_mm.quantize_model first)",
    nn.ReLU6: 'QuantReLU', nn.LeakyReLU: 'QuantReLU', nn.PReLU: 'QuantReLU',
    nn.ELU: 'QuantReLU', nn.SELU: 'QuantReLU', nn.CELU: 'QuantReLU',
    nn.GELU: 'QuantReLU', nn.SiLU: 'QuantReLU', nn.Mish: 'QuantReLU',
    nn.Hardswish: 'QuantReLU', nn.Hardsigmoid: 'QuantReLU',
    nn.Sigmoid: 'QuantReLU (or move it into the decode step)',
    nn.Tanh: 'QuantReLU', nn.Hardtanh: 'QuantReLU', nn.Softplus: 'QuantReLU',
    nn.Softmax: 'nothing on the spiking path (move it into the decode step)',
}


class UnconvertibleModelError(FastSNNError, TypeError):
    """The model holds modules with no spiking equivalent."""


def _matches(name, patterns):
    return any(name == p or name.startswith(p + '.') or fnmatch.fnmatch(name, p)
               for p in patterns)


def find_unconvertible(model, skip=()):
    """Return [(path, type name, replacement)] for every refused module."""
    found = []
    for name, mod in model.named_modules():
        if skip and _matches(name, skip):
            continue
        for typ, use in UNCONVERTIBLE.items():
            if type(mod) is typ or (isinstance(mod, typ) and
                                    not isinstance(mod, QuantReLU)):
                found.append((name or '<root>', type(mod).__name__, use))
                break
    return found


def check_convertible(model, skip=()):
    bad = find_unconvertible(model, skip)
    if bad:
        lines = '\n'.join(f'  {p}: {t} -> use {u}' for p, t, u in bad)
        raise UnconvertibleModelError(
            f'cannot convert to an SNN: {len(bad)} module(s) have no spiking '
            f'equivalent:\n{lines}')
    if not any(isinstance(m, QuantReLU) for m in model.modules()):
        raise UnconvertibleModelError(
            'cannot convert to an SNN: the model has no QuantReLU; quantize '
            'it first (fastsnn_mm.quantize_model or a `quant=` config field)')


def _plain_layer(layer):
    """A plain Conv2d/Linear holding ``layer``'s fake-quantized weight."""
    bias = layer.bias is not None
    if isinstance(layer, nn.Conv2d):
        plain = nn.Conv2d(layer.in_channels, layer.out_channels,
                          layer.kernel_size, layer.stride, layer.padding,
                          layer.dilation, layer.groups, bias,
                          layer.padding_mode)
    else:
        plain = nn.Linear(layer.in_features, layer.out_features, bias)
    plain = plain.to(layer.weight.device, layer.weight.dtype)
    plain.weight.data.copy_(layer.quantized_weight().detach())
    if bias:
        plain.bias.data.copy_(layer.bias.data)
    return plain


def _bake_weights(model):
    """Replace fake-quantized Conv/Linear by plain layers with their weights."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if hasattr(child, 'quantized_weight') and isinstance(
                    child, (nn.Conv2d, nn.Linear)):
                setattr(parent, name, _plain_layer(child))


def replace_quant_relus(model, timesteps=None, neuron='signed'):
    """Swap every QuantReLU for a neuron; returns the T used."""
    if neuron not in NEURONS:
        raise ValueError(
            f"neuron must be one of {sorted(NEURONS)}, got {neuron!r}")
    cls = NEURONS[neuron]
    if timesteps is None:
        bits = {m.bits for m in model.modules()
                if isinstance(m, (QuantReLU, IFNeuron)) and m.bits}
        if not bits:
            raise ValueError('timesteps not given and no layer knows its bits')
        timesteps = 2 ** max(bits) - 1
    check_timesteps(timesteps)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, QuantReLU):
                setattr(parent, name, cls.from_quant_relu(child, timesteps))
            elif isinstance(child, IFNeuron):  # re-conversion: new T / type
                new = cls(child.theta, timesteps, child.bits,
                          child.inplace)
                setattr(parent, name, new)
    return timesteps


class SpikingNetwork(nn.Module):
    """A plain converted network: ``forward(x)`` presents x for T steps and
    returns the last layer's output averaged over T."""

    def __init__(self, module, timesteps, mode='folded', time_chunk=None):
        super().__init__()
        self.module = module
        self.timesteps = check_timesteps(timesteps)
        self.mode = check_mode(mode)
        check_time_chunk(time_chunk, mode, timesteps)
        self.time_chunk = time_chunk

    def forward(self, x):
        return run_timesteps(self.module, self.module, x, self.timesteps,
                             self.mode, self.time_chunk)


def convert_to_snn(model, timesteps=None, neuron='signed', mode='folded',
                   skip=(), inplace=False, time_chunk=None, fold_bn=False):
    """Convert a QANN into its Fast-SNN.

    Args:
        model: a network whose ReLUs are QuantReLU (an mm model or any
            ``nn.Module``).
        timesteps (int | None): T; default 2^b - 1 of the QuantReLUs.
        neuron (str): 'signed' (Fast-SNN) or 'unsigned' (plain IF).
        mode (str): 'folded' or 'streaming'.
        skip: module-path patterns left out of the unconvertible check.
        inplace (bool): convert ``model`` itself instead of a deep copy.
        time_chunk (int | None): folded mode only: present at most this
            many steps per call (memory grows with it, not with T); the
            spikes are the same for every choice.
        fold_bn (bool): fold eval-mode BN into the conv before it at
            inference (see :mod:`fastsnn_mm.spiking.fold_bn`); parameters
            and checkpoint keys are unchanged. Off by default: it keeps a
            folded copy of those weights (more memory) for a few percent of
            time, and outputs then differ from the QANN's BN in the last
            float bits.

    Returns:
        An mm task wrapper of fastsnn_mm converts itself and is returned in
        SNN mode; any other module is returned wrapped in
        :class:`SpikingNetwork`. Either way the result is in eval mode: a
        converted network is for inference (BN uses its running statistics),
        so a model passed in training mode is converted all the same, and
        the one log line of the conversion says so.
    """
    check_snn_arguments(timesteps, neuron, mode, time_chunk)
    was_training = model.training
    already = any(isinstance(m, IFNeuron) for m in model.modules())
    if not already:
        check_convertible(model, skip)
    if not inplace:
        model = copy.deepcopy(model)
    _bake_weights(model)
    if fold_bn:
        fold_batchnorm(model)
    T = replace_quant_relus(model, timesteps, neuron)
    _log_conversion(model, T, neuron, mode, was_training)
    if hasattr(model, 'set_snn'):
        model.set_snn(timesteps=T, neuron=neuron, mode=mode,
                      time_chunk=time_chunk)
        return model.eval()
    if isinstance(model, SpikingNetwork):
        model.timesteps, model.mode = T, mode
        model.time_chunk = time_chunk
        return model.eval()
    return SpikingNetwork(model, T, mode, time_chunk).eval()


def check_snn_arguments(timesteps, neuron, mode, time_chunk):
    """Bad arguments fail before any copying or surgery."""
    if timesteps is not None:
        check_int('timesteps', timesteps, 1,
                  hint='T; None gives 2^bits - 1 of the QuantReLUs')
    check_choice('neuron', neuron, sorted(NEURONS))
    check_choice('mode', mode, MODES)
    if time_chunk is not None:
        check_int('time_chunk', time_chunk, 1,
                  hint='steps per pass in folded mode')
        if mode != 'folded':
            raise BadArgumentError(
                f'time_chunk applies to folded mode only, got mode={mode!r}: '
                'drop time_chunk (streaming runs one step per pass)')


def _log_conversion(model, T, neuron, mode, was_training):
    """The one line that tells an SNN run's log from a QANN run's."""
    note = (' (the model was in training mode: converted for inference, '
            'now in eval mode)') if was_training else ''
    print_log(f'FastSNN: running as an SNN: T={T}, neuron={neuron}, '
              f'mode={mode}, {len(neurons_of(model))} neuron layers{note}',
              logger='current')
