"""How one conv or linear runs on spikes in a low precision.

Each layer prepares its weights once (:func:`prepare_float`,
:func:`prepare_int8`; recomputed when weights or threshold change) and then
runs every call on its input x = spike x theta (:func:`run_float`,
:func:`run_int8`); every output is float32.

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
    unit = float(torch.tensor(t, dtype=dtype).float().item())
    info = torch.finfo(dtype)
    if not info.tiny <= unit <= info.max:
        unit = None
    factor = t / unit if unit is not None else t
    w = (weight.detach().to(torch.float64) * factor).to(dtype)
    b = None if bias is None else bias.detach().float()
    return FloatWeights(w, b, unit)


def run_float(layer, x, prepared: FloatWeights):
    if prepared.unit is None:
        spikes = torch.sign(x).to(prepared.weight.dtype)
    else:
        spikes = x.to(prepared.weight.dtype)
    if isinstance(layer, torch.nn.Conv2d):
        out = layer._conv_forward(spikes, prepared.weight, None)
    else:
        out = F.linear(spikes, prepared.weight)
    if prepared.bias is None:
        return out.float()
    # float32 bias + low-precision output: one float32 rounding, one pass
    return torch.add(_per_channel(layer, prepared.bias, out), out)


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


def run_int8(layer, x, prepared: Int8Weights):
    conv = isinstance(layer, torch.nn.Conv2d)
    if prepared.packed is not None:
        return _onednn(layer, x, prepared) if conv else \
            _onednn_linear(x, prepared)
    spikes = torch.sign(x)
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


def _onednn(layer, x, p: Int8Weights):
    # spikes + 1 as uint8 (oneDNN's convolution takes unsigned input; the
    # zero point 1 gives back -1, 0, +1 and pads with spike 0)
    shifted = torch.sign(x).to(torch.int8).add_(1).view(torch.uint8)
    out = torch.ops.onednn.qconv2d_pointwise(
        shifted, 1.0, 1, p.packed, p.scale, _zero_points(p.scale), p.bias,
        list(layer.stride), list(layer.padding), list(layer.dilation),
        layer.groups, 1.0, 0, torch.float32, 'none', [], '')
    # oneDNN answers channels-last; the neurons and BN want it plain
    return out.contiguous()


def _onednn_linear(x, p: Int8Weights):
    spikes = torch.sign(x).to(torch.int8).reshape(-1, x.shape[-1])
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
            if not torch.equal(run_int8(layer, x, fast),
                               run_int8(layer, x, slow)):
                return False
    except (RuntimeError, AttributeError, TypeError):
        return False
    return True
