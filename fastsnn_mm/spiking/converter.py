"""QANN -> SNN conversion: one converter for any model built on QuantReLU.

Weights are kept (fake-quantized weights are baked into plain layers), each
QuantReLU becomes an IF neuron whose threshold is its alpha, and the default
number of time steps is 2^b - 1. Non-linearities with no exact spiking
equivalent are refused up front, all of them in one error.
"""
from copy import deepcopy

from mmengine.logging import print_log
from torch import nn

from ..errors import BadArgumentError, UnconvertibleModelError
from ..quantization import QuantReLU
from ..quantization.activations import NON_RELU_ACTIVATIONS
from ..utils.patterns import path_matches
from .fold_bn import fold_batchnorm
from .low_precision import (
    check_spike_dtype,
    restore_float_layers,
    use_spike_dtype,
)
from .neurons import NEURONS, IFNeuron
from .run_state import neurons_of
from .runner import run_timesteps
from .validation import check_snn_arguments

#: module type -> what to use instead in a convertible model
UNCONVERTIBLE = {
    nn.MaxPool1d: 'a stride-2 conv or AvgPool', nn.MaxPool2d:
    'a stride-2 conv or AvgPool2d', nn.MaxPool3d: 'a stride-2 conv or AvgPool',
    nn.AdaptiveMaxPool2d: 'AdaptiveAvgPool2d',
    nn.ReLU: "QuantReLU (run fastsnn_mm.quantize_model first)",
    **NON_RELU_ACTIVATIONS,
    # statistics of each time step's own input: a spiking step is not the
    # QANN's activation, so the SNN would normalise something else
    nn.GroupNorm: 'BatchNorm (folded at inference)',
    nn.LayerNorm: 'BatchNorm (folded at inference)',
    nn.InstanceNorm2d: 'BatchNorm (folded at inference)',
}


def find_unconvertible(model, skip=()):
    """Return [(path, type name, replacement)] for every refused module."""
    found = []
    for name, mod in model.named_modules():
        if skip and path_matches(name, skip):
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
            f'equivalent:\n{lines}\n(a config\'s quant=dict(bits=..., '
            'make_convertible=True) replaces max-pools and ReLU-like '
            'activations before QAT)')
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
    """Replace fake-quantized Conv/Linear by plain layers with their
    weights."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if hasattr(child, 'quantized_weight') and isinstance(
                    child, (nn.Conv2d, nn.Linear)):
                setattr(parent, name, _plain_layer(child))


def replace_quant_relus(model, timesteps=None, neuron='signed'):
    """Swap every QuantReLU for a neuron; returns the T used. The arguments
    are :func:`convert_to_snn`'s, checked there."""
    cls = NEURONS[neuron]
    if timesteps is None:
        bits = {m.bits for m in model.modules()
                if isinstance(m, (QuantReLU, IFNeuron)) and m.bits}
        if not bits:
            raise ValueError('timesteps not given and no layer knows its bits')
        timesteps = 2 ** max(bits) - 1
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
        check_snn_arguments(timesteps, mode=mode, time_chunk=time_chunk,
                            timesteps_default=False)
        self.timesteps, self.mode = timesteps, mode
        self.time_chunk = time_chunk

    def forward(self, x):
        return run_timesteps(self.module, self.module, x, self.timesteps,
                             self.mode, self.time_chunk)


def convert_to_snn(model, timesteps=None, neuron='signed', mode='folded',
                   skip=(), *, copy=True, time_chunk=None, fold_bn=False,
                   spike_dtype=None, **removed):
    """Convert a QANN into its Fast-SNN.

    Args:
        model: a network whose ReLUs are QuantReLU (an mm model or any
            ``nn.Module``).
        timesteps (int | None): T; default 2^b - 1 of the QuantReLUs.
        neuron (str): 'signed' (Fast-SNN) or 'unsigned' (plain IF).
        mode (str): 'folded' or 'streaming'.
        skip: module-path patterns left out of the unconvertible check.
        copy (bool): convert a deep copy and leave ``model`` as it is
            (default); ``False`` converts ``model`` itself, as ``to_snn``
            does (no second copy of the weights). Keyword only, as are the
            arguments after it.
        time_chunk (int | None): folded mode only: present at most this
            many steps per call (memory grows with it, not with T); the
            spikes are the same for every choice.
        fold_bn (bool): fold eval-mode BN into the conv before it at
            inference (see :mod:`fastsnn_mm.spiking.fold_bn`); parameters
            and checkpoint keys are unchanged. Off by default: it keeps a
            folded copy of those weights (more memory) for a few percent of
            time, and outputs then differ from the QANN's BN in the last
            float bits.
        spike_dtype (str | None): run the convs and linears that read a
            neuron's output in 'bfloat16', 'float16', 'int8' or
            'int8-rounded' (see :mod:`fastsnn_mm.spiking.low_precision`):
            spikes are exact there, only weights round (none for 'int8'
            on weights quantized to <= 8 bits); membranes stay float32.
            None (default): float32 throughout.

    Returns:
        An mm task wrapper of fastsnn_mm converts itself and is returned in
        SNN mode; any other module is returned wrapped in
        :class:`SpikingNetwork`. Either way the result is in eval mode: a
        converted network is for inference (BN uses its running statistics),
        so a model passed in training mode is converted all the same, and
        the one log line of the conversion says so.
    """
    _refuse_removed_keywords(removed)
    check_snn_arguments(timesteps, neuron, mode, time_chunk)
    check_spike_dtype(spike_dtype)
    was_training = model.training
    already = any(isinstance(m, IFNeuron) for m in model.modules())
    if not already:
        check_convertible(model, skip)
    if copy:
        model = deepcopy(model)
    restore_float_layers(model)  # a re-conversion starts from plain layers
    _bake_weights(model)
    if fold_bn:
        fold_batchnorm(model)
    T = replace_quant_relus(model, timesteps, neuron)
    use_spike_dtype(model, spike_dtype)
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


def _refuse_removed_keywords(removed):
    """``inplace`` now means "overwrite the input" everywhere (neurons,
    QuantReLU); the converter's old ``inplace`` ("no deep copy") is
    ``copy`` with the opposite sense. Refused rather than translated, so
    code written for either meaning is looked at once."""
    if 'inplace' in removed:
        old = removed['inplace']
        raise BadArgumentError(
            f'convert_to_snn takes copy= instead of inplace=: write '
            f'copy={not old!r} for inplace={old!r} (copy=False converts the '
            'model itself)')
    if removed:
        raise TypeError('convert_to_snn() got an unexpected keyword '
                        f'argument {next(iter(removed))!r}')


def _log_conversion(model, T, neuron, mode, was_training):
    """The one line that tells an SNN run's log from a QANN run's."""
    note = (' (the model was in training mode: converted for inference, '
            'now in eval mode)') if was_training else ''
    print_log(f'FastSNN: running as an SNN: T={T}, neuron={neuron}, '
              f'mode={mode}, {len(neurons_of(model))} neuron layers{note}',
              logger='current')
