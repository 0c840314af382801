"""How one conv or linear runs on spikes in a low precision.

Each layer prepares its weights once (:func:`prepare_float`,
:func:`prepare_int8`; recomputed when weights or threshold change) and then
runs every call on its input x = spike x theta in the form of
:func:`codes_form` (:func:`run_float`, :func:`run_int8`): written so by
the neuron, or converted by the layer (:mod:`..spike_codes`). Every output
is float32.

Why the inputs are exact: x holds +-theta or 0 and nothing else, so
``x.to(dtype)`` is spike x u with u = theta rounded to the dtype, and the
weights take theta / u. For int8, ``sign(x)`` is the spike itself.

int8 runs on the CPU through oneDNN's int8 convolution and matmul (the
ops torch's own x86 quantization lowers to; uint8 spikes shifted by one,
int8 weights, int32 sums, one float32 rescale per output channel). Where
those ops are missing, or on other devices, the same arithmetic runs as a
float32 conv of the integers: exact as well (|sums| < 2^24; on CUDA the
TF32 inputs +-1 and |k| <= 127 are exact too), one rescale after. Both
give the same bits (:func:`onednn_int8_works` checks it before use).
"""
import functools
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..spike_codes import SHIFTED, SIGN, UNIT, SpikeCodes, unit_of
from .int_grid import IntGrid

# -- bfloat16 / float16 -----------------------------------------------------

@dataclass(frozen=True)
class FloatWeights:
    """weight x theta / u in ``dtype``; u = theta in ``dtype``, or None when
    theta has no normal value there (then spikes come from ``sign``)."""
    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    unit: Optional[float]


def prepare_float(weight, bias, theta, dtype) -> FloatWeights:
    t = float(theta.reshape(()).item())
    unit = unit_of(t, dtype)
    factor = t / unit if unit is not None else t
    w = (weight.detach().to(torch.float64) * factor).to(dtype)
    if w.dim() == 4:
        # channels-last weights: oneDNN answers channels-last, which the
        # neurons walk as it is and whose codes the next conv reads as
        # they are (no reorder on either side)
        w = w.contiguous(memory_format=torch.channels_last)
    b = None if bias is None else bias.detach().float()
    return FloatWeights(w, b, unit)


def codes_form(layer, prepared) -> SpikeCodes:
    """The form of spikes ``layer`` reads with these prepared weights
    (:mod:`..spike_codes`): what its neuron may write for it, and what
    :meth:`SpikeCodes.convert` makes of spike x theta otherwise."""
    if isinstance(prepared, FloatWeights):
        kind = SIGN if prepared.unit is None else UNIT
        return SpikeCodes(kind, prepared.weight.dtype)
    if prepared.packed is None:  # emulated: float32 signs
        return SpikeCodes(SIGN, torch.float32)
    if isinstance(layer, torch.nn.Conv2d):
        return SpikeCodes(SHIFTED, torch.uint8)
    return SpikeCodes(SIGN, torch.int8)


def run_float(layer, spikes, prepared: FloatWeights):
    """``spikes`` in :func:`codes_form`: spike x u, or the sign."""
    if isinstance(layer, torch.nn.Conv2d):
        out = layer._conv_forward(spikes, prepared.weight, None)
    else:
        out = F.linear(spikes, prepared.weight)
    if prepared.bias is None:
        return out.float()
    # float32 bias + low-precision output: one float32 rounding (the bits
    # of torch.add(bias, out), whose mixed-dtype path is 1.7x slower)
    return out.float().add_(_per_channel(layer, prepared.bias, out))


def run(layer, x, prepared, spikes=None):
    """``layer`` on x = spike x theta with its prepared weights; ``spikes``:
    x already in :func:`codes_form` (as its neuron wrote it), else x is
    converted here."""
    if spikes is None:
        spikes = codes_form(layer, prepared).convert(x)
    if isinstance(prepared, FloatWeights):
        return run_float(layer, spikes, prepared)
    return run_int8(layer, spikes, prepared)


# -- int8 ---------------------------------------------------------------------

@dataclass(frozen=True)
class Int8Weights:
    """Integer weights, the float32 rescale (grid scale x theta) per output
    channel, the float32 bias, and oneDNN's packed weights (None:
    emulated in float32)."""
    levels: torch.Tensor
    scale: torch.Tensor
    bias: Optional[torch.Tensor]
    packed: Optional[torch.Tensor]


def prepare_int8(layer, grid: IntGrid, bias, theta, device,
                 onednn=None) -> Int8Weights:
    """``onednn``: pack for oneDNN (default: on the CPU when
    :func:`onednn_int8_works`)."""
    if onednn is None:
        onednn = torch.device(device).type == 'cpu' and onednn_int8_works()
    scale = (grid.scale.to(device) * theta.to(device, torch.float64)
             ).to(torch.float32)
    b = None if bias is None else bias.detach().float()
    packed = _pack(layer, grid.levels.cpu(), scale) if onednn else None
    return Int8Weights(grid.levels.to(device), scale, b, packed)


def _pack(layer, levels, scale):
    if isinstance(layer, torch.nn.Conv2d):
        return torch.ops.onednn.qconv_prepack(
            levels, scale, 1.0, 1, list(layer.stride), list(layer.padding),
            list(layer.dilation), layer.groups, None)
    return torch.ops.onednn.qlinear_prepack(levels, None)


def int8_supported(layer) -> bool:
    """Layers the int8 path takes: Linear, and Conv2d with zero padding
    given as numbers (not 'same' / 'valid')."""
    if isinstance(layer, torch.nn.Conv2d):
        return layer.padding_mode == 'zeros' and not isinstance(
            layer.padding, str)
    return isinstance(layer, torch.nn.Linear)


def run_int8(layer, spikes, prepared: Int8Weights):
    """``spikes`` in :func:`codes_form`: uint8 spike + 1 for oneDNN's
    convolution, int8 signs for its matmul, float32 signs emulated."""
    conv = isinstance(layer, torch.nn.Conv2d)
    if prepared.packed is not None:
        return _onednn(layer, spikes, prepared) if conv else \
            _onednn_linear(spikes, prepared)
    levels = prepared.levels.to(spikes.dtype)
    if conv:
        acc = F.conv2d(spikes, levels, None, layer.stride, layer.padding,
                       layer.dilation, layer.groups)
    else:
        acc = F.linear(spikes, levels)
    acc.mul_(_per_channel(layer, prepared.scale, acc))
    if prepared.bias is not None:
        acc.add_(_per_channel(layer, prepared.bias, acc))
    return acc


def _per_channel(layer, values, out):
    """``values`` (one per output channel) shaped to broadcast over
    ``out``: channels on axis 1 for a conv, last for a linear."""
    if isinstance(layer, torch.nn.Conv2d):
        return values.view(1, -1, *([1] * (out.dim() - 2)))
    return values


def _onednn(layer, shifted, p: Int8Weights):
    # spikes + 1 as uint8: oneDNN's convolution takes unsigned input, the
    # zero point 1 gives back -1, 0, +1 and pads with spike 0. It answers
    # channels-last, and so it stays: BN, adds and the neurons (which
    # walk any dense layout) keep it, and the next int8 convolution reads
    # its neuron's codes without a reorder
    return torch.ops.onednn.qconv2d_pointwise(
        shifted, 1.0, 1, p.packed, p.scale, _zero_points(p.scale), p.bias,
        list(layer.stride), list(layer.padding), list(layer.dilation),
        layer.groups, 1.0, 0, torch.float32, 'none', [], '')


def _onednn_linear(spikes, p: Int8Weights):
    x, spikes = spikes, spikes.reshape(-1, spikes.shape[-1])
    out = torch.ops.onednn.qlinear_pointwise(
        spikes, 1.0, 0, p.packed, p.scale, _zero_points(p.scale), p.bias,
        1.0, 0, torch.float32, 'none', [], '')
    return out.reshape(*x.shape[:-1], out.shape[-1])


def _zero_points(scale):
    return torch.zeros(scale.shape, dtype=torch.int64)


@functools.lru_cache(maxsize=None)
def onednn_int8_works() -> bool:
    """Whether this torch has oneDNN's int8 conv and matmul with float32
    output and they give the float32 emulation's bits (checked once on a
    small case): the ops are torch internals whose signatures move."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        conv = torch.nn.Conv2d(4, 6, 3, padding=1, stride=2)
        linear = torch.nn.Linear(12, 5)
        theta = torch.tensor([0.75])
        for layer, shape in ((conv, (2, 4, 7, 7)), (linear, (3, 12))):
            levels = torch.randint(-127, 128, layer.weight.shape,
                                   generator=gen, dtype=torch.int8)
            grid = IntGrid(levels, torch.rand(levels.shape[0],
                                              dtype=torch.float64) / 64)
            x = torch.randint(-1, 2, shape, generator=gen).float() * theta
            fast = prepare_int8(layer, grid, layer.bias, theta, 'cpu', True)
            slow = prepare_int8(layer, grid, layer.bias, theta, 'cpu', False)
            if not torch.equal(run(layer, x, fast), run(layer, x, slow)):
                return False
    except (RuntimeError, AttributeError, TypeError):
        return False
    return True
