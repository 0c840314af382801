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
from ..quantization.spiking_rules import becomes_neuron, module_rule
from ..quantization.spiking_trace import check_spiking_calls
from ..utils.modules import replace_modules
from ..utils.patterns import path_matches
from .fold_bn import fold_batchnorm
from .inplace_bn import bn_in_place
from .low_precision import (
    check_spike_dtype,
    resolve_spike_dtype,
    restore_float_layers,
    use_spike_dtype,
)
from .neurons import NEURONS, IFNeuron
from .run_state import neurons_of
from .runner import run_settings
from .settings import SNNSettings
from .validation import check_snn_arguments

#: module types refused beyond the spiking rules table
#: (:mod:`fastsnn_mm.quantization.spiking_rules`, which decides every
#: non-linear module and function): a plain ReLU is fine on the spiking
#: path, once surgery has quantized it
UNCONVERTIBLE = {
    nn.ReLU: 'use QuantReLU (run fastsnn_mm.quantize_model first)',
}
#: how a refusal of something with a substitute ends
_MAKE_CONVERTIBLE = 'quant=dict(..., make_convertible=True) {} before QAT'


def _module_refusal(mod):
    """Why the converter refuses ``mod`` (None: it does not)."""
    if isinstance(mod, QuantReLU):
        return None
    for typ, why in UNCONVERTIBLE.items():
        if isinstance(mod, typ):
            return why
    rule = module_rule(mod)
    if rule is None:
        return None
    if rule.refused:
        return rule.note  # word for word what make_convertible says
    return f'use {rule.use} ({rule.note}; ' + \
        _MAKE_CONVERTIBLE.format('replaces it') + ')'


def _function_refusals(model, skip, path):
    """[(module path, function, why)] of the non-linear calls a traced
    forward makes on the spiking path (:mod:`~fastsnn_mm.quantization.
    spiking_trace`); none when nothing in the model spikes."""
    if not any(becomes_neuron(m) for m in model.modules()):
        return []
    traced = check_spiking_calls(model, path, skip, who='convert_to_snn')
    if traced is None:
        return []
    routes, findings = traced
    found = {}
    for route in routes:
        for call in filter(None, route.plan):
            name, rule = call
            found.setdefault((route.path, name), (
                f'use {rule.use} ({rule.note}; ' + _MAKE_CONVERTIBLE.format(
                    f'routes the call to a {rule.use} child of the module')
                + ')'))
    for f in findings:
        found.setdefault((f.path, f.name), f.rule.note)
    return [(p, n, why) for (p, n), why in found.items()]


def find_unconvertible(model, skip=(), path=None, functions=True):
    """Return [(path, type or function name, why)] for every refused
    module, then (with ``functions``) every non-linear function call on
    the spiking path, traced on ``path`` (default: the model's
    ``spiking_path``, else the model)."""
    found, refused = [], []
    for name, mod in model.named_modules():
        if skip and path_matches(name, skip) or \
                path_matches(name, refused):  # inside one: its own business
            continue
        why = _module_refusal(mod)
        if why is not None:
            found.append((name or '<root>', type(mod).__name__, why))
            refused.append(name)
    if functions:
        found += _function_refusals(model, skip, path)
    return found


def check_convertible(model, skip=(), path=None):
    """Raise :class:`UnconvertibleModelError` naming every module and
    function call the SNN cannot run (:func:`find_unconvertible`), or when
    the model has no QuantReLU."""
    bad = find_unconvertible(model, skip, path)
    if bad:
        lines = '\n'.join(f'  {p}: {t} -> {why}' for p, t, why in bad)
        raise UnconvertibleModelError(
            f'cannot convert to an SNN: {len(bad)} module(s) or function '
            f'call(s) on the spiking path have no spiking equivalent:\n'
            f'{lines}\n(a config\'s quant=dict(bits=..., '
            'make_convertible=True) replaces max-pools and ReLU-like '
            'activations, modules and function calls, before QAT)')
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
    return plain.train(layer.training)


def _bake_weights(model):
    """Replace fake-quantized Conv/Linear by plain layers with their
    weights (one plain layer for a layer registered at several places)."""
    replace_modules(model, lambda path, child: _plain_layer(child) if (
        hasattr(child, 'quantized_weight')
        and isinstance(child, (nn.Conv2d, nn.Linear))) else None)


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

    def swap(path, child):
        if isinstance(child, QuantReLU):
            return cls.from_quant_relu(child)
        if isinstance(child, IFNeuron):  # re-conversion: another rule
            return cls(child.theta, child.bits, child.inplace)
        return None

    replace_modules(model, swap)
    return timesteps


class SpikingNetwork(nn.Module):
    """A plain converted network: ``forward(x)`` presents x for T steps and
    returns the last layer's output averaged over T, as its
    :class:`~.settings.SNNSettings` say."""

    def __init__(self, module, settings: SNNSettings):
        super().__init__()
        self.module = module
        self.settings = settings

    @property
    def timesteps(self):
        return self.settings.timesteps

    @property
    def mode(self):
        return self.settings.mode

    @property
    def time_chunk(self):
        return self.settings.time_chunk

    def forward(self, x):
        return run_settings(self.module, self.module, x, self.settings)


def convert_to_snn(model, timesteps=None, neuron='signed', mode='folded',
                   skip=(), *, copy=True, time_chunk=None, fold_bn=False,
                   spike_dtype=None, allow_rounding=False, **removed):
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
            None (default): float32 throughout. 'auto': the fastest exact
            one here, said in the log (:mod:`~.low_precision.auto`).
        allow_rounding (bool): ``spike_dtype='auto'`` may pick bfloat16
            (weights and outputs round) where the device runs it fast.

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
    bn_in_place(model)  # the pairs not folded: same bits, less memory
    T = replace_quant_relus(model, timesteps, neuron)
    spike_dtype = resolve_spike_dtype(model, spike_dtype, allow_rounding)
    # checked above; from here on the run reads these, once made
    settings = SNNSettings(T, neuron, mode, time_chunk, spike_dtype)
    use_spike_dtype(model, spike_dtype)
    _log_conversion(model, T, neuron, mode, was_training)
    if hasattr(model, 'set_snn'):
        model.set_snn(settings)
        return model.eval()
    if isinstance(model, SpikingNetwork):
        model.settings = settings
        return model.eval()
    return SpikingNetwork(model, settings).eval()


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
