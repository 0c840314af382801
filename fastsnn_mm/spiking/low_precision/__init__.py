"""Spike-reading convs and linears in a low precision (``spike_dtype``).

``convert_to_snn(..., spike_dtype=...)`` calls :func:`use_spike_dtype`
once its neurons are in place: every plain conv and linear becomes a
:class:`SpikeConv2d` / :class:`SpikeLinear` sharing its parameters, and
the model's first call finds which of them read a neuron's output
(:mod:`.trace`). Those run with the neuron's threshold folded into their
weights, on exact spikes, in the chosen dtype (:mod:`.options`); their
outputs come back in float32, so membranes, counts and every other layer
stay as they are. The first layer (it reads the image) and a readout on
pooled spikes are not fed by a neuron and stay float32.
"""
from torch import nn

from ...utils.modules import replace_modules
from ..fold_bn import FoldedConv2d
from ..run_state import neurons_of
from .auto import AUTO, pick_spike_dtype, resolve_spike_dtype
from .fast_paths import say_if_slow, slow_path_reason
from .int_grid import IntGrid, find_int_grid, round_to_int_grid
from .layers import FLOAT32, SpikeConv2d, SpikeInput, SpikeLinear
from .options import SPIKE_DTYPE_CHOICES, SPIKE_DTYPES, check_spike_dtype
from .trace import SpikeTrace

#: layer types whose forward is the plain conv / linear of their
#: parameters (mmcv's wrappers only add an empty-batch case)
_CONVS = {nn.Conv2d, FoldedConv2d}
_LINEARS = {nn.Linear}
_MMCV = {'mmcv.cnn.bricks.wrappers.Conv2d': SpikeConv2d,
         'mmcv.cnn.bricks.wrappers.Linear': SpikeLinear}


def _spike_class(layer):
    cls = type(layer)
    if cls in _CONVS:
        return SpikeConv2d
    if cls in _LINEARS:
        return SpikeLinear
    return _MMCV.get(f'{cls.__module__}.{cls.__qualname__}')


def use_spike_dtype(model: nn.Module, spike_dtype):
    """Run ``model``'s spike-reading layers in ``spike_dtype`` (None: all
    float32, undoing an earlier choice); returns the layers that may.

    Called by :func:`~fastsnn_mm.spiking.convert_to_snn` once the neurons
    are in place; parameters and state_dict keys do not change.
    """
    check_spike_dtype(spike_dtype)
    restore_float_layers(model)
    if spike_dtype is None:
        return []
    trace = SpikeTrace(model, spike_dtype)
    new_for, names = {}, {}
    for name, layer in model.named_modules():
        cls = _spike_class(layer)
        if cls is not None and id(layer) not in new_for:
            new_for[id(layer)] = cls.sharing(layer, spike_dtype, trace)
            names[id(layer)] = name
    for key, layer in new_for.items():
        trace.watch(layer, names[key])
    replace_modules(model, lambda path, m: new_for.get(id(m)))
    param = next(model.parameters(), None)
    if param is not None:
        say_if_slow(param.device, spike_dtype)
    return list(new_for.values())


def restore_float_layers(model: nn.Module) -> int:
    """Put back the plain layers :func:`use_spike_dtype` replaced (before
    a re-conversion folds BN or swaps neurons); returns how many."""
    new_for = {}
    for layer in model.modules():
        if isinstance(layer, SpikeInput):
            layer._trace.retire()
            new_for[id(layer)] = layer._float_layer
    replace_modules(model, lambda path, m: new_for.get(id(m)))
    for neuron in neurons_of(model):
        neuron.spike_codes = None  # no low-precision reader any more
    return len(new_for)


def spike_layers(model: nn.Module):
    """{module path: what its spike-reading calls run in} for the layers
    found reading spikes so far (empty before the first call)."""
    return {name: layer.runs_in for name, layer in model.named_modules()
            if isinstance(layer, SpikeInput) and layer.runs_in is not None}


__all__ = ['SPIKE_DTYPES', 'check_spike_dtype', 'use_spike_dtype',
           'restore_float_layers', 'spike_layers', 'SpikeConv2d',
           'SpikeLinear', 'SpikeInput', 'SpikeTrace', 'IntGrid',
           'find_int_grid', 'round_to_int_grid', 'slow_path_reason',
           'say_if_slow', 'FLOAT32', 'AUTO', 'SPIKE_DTYPE_CHOICES',
           'pick_spike_dtype', 'resolve_spike_dtype']
