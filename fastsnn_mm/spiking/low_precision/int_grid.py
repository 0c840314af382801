"""Weights as small integers times a per-channel scale, for int8 layers.

A weight-quantized layer's weights are ``alpha * k / steps`` (uniform
quantizer, |k| <= steps = 2^(bits-1) - 1) or ``alpha * level`` (APoT, whose
levels are sums of powers of two over their largest sum). Both are integers
times one scale per tensor, so int8 arithmetic on them is exact when the
integers fit in [-127, 127]: uniform weights up to 8 bits, APoT weights up
to 5 bits (6-bit APoT needs 224 steps). A BN folded into the conv
(``fold_bn``) scales each output channel, so the grid is looked for per
output channel.

The grid is read from the weights themselves, not from the quantizer that
made them: the converter bakes quantized weights into plain layers before
the neurons are in place, and a checkpoint of a tuned SNN holds only the
weights. A tensor counts as on a grid when every weight is within a few
float32 roundings of an integer multiple of its channel's scale.
"""
from dataclasses import dataclass
from typing import Optional

import torch

#: the largest |integer| an int8 weight takes
MAX_LEVEL = 127

#: how far (in grid steps) a weight may sit from its integer and still
#: count as on the grid: the quantizers' float32 arithmetic leaves about
#: two roundings of the weight, 2^-23 of the channel's largest weight each
EXACT_TOLERANCE = 8 * 2.0**-24


@dataclass(frozen=True)
class IntGrid:
    """``weight ~= levels * scale`` per output channel.

    levels: int8 tensor shaped as the weight, |levels| <= :data:`MAX_LEVEL`.
    scale: float64 ``[out_channels]``.
    moved: the largest change of a weight, relative to its channel's
        largest weight: 0.0 when the weights were on the grid already
        (up to :data:`EXACT_TOLERANCE`), else what rounding cost.
    """
    levels: torch.Tensor
    scale: torch.Tensor
    moved: float = 0.0


def _per_channel(weight):
    w = weight.detach().to(torch.float64).reshape(weight.shape[0], -1)
    amax = w.abs().amax(1)
    return w, torch.where(amax > 0, amax, torch.ones_like(amax))


def find_int_grid(weight: torch.Tensor) -> Optional[IntGrid]:
    """The coarsest grid of at most :data:`MAX_LEVEL` steps per side (per
    output channel) the weights lie on, or None."""
    w, amax = _per_channel(weight)
    # a channel on a grid takes at most 2 * MAX_LEVEL + 1 values
    if torch.unique(w).numel() > (2 * MAX_LEVEL + 1) * w.shape[0]:
        return None
    unit = w / amax[:, None]  # in [-1, 1]; the largest weight is +-1
    steps = torch.zeros(w.shape[0], dtype=torch.int64, device=w.device)
    todo = torch.ones(w.shape[0], dtype=torch.bool, device=w.device)
    for n in range(1, MAX_LEVEL + 1):
        rows = todo.nonzero().flatten()
        scaled = unit[rows] * n
        fits = (scaled - scaled.round()).abs().amax(1) <= EXACT_TOLERANCE * n
        steps[rows[fits]] = n
        todo[rows[fits]] = False
        if not todo.any():
            break
    if todo.any():
        return None
    scale = amax / steps
    levels = torch.round(w / scale[:, None])
    return IntGrid(levels.to(torch.int8).reshape(weight.shape), scale)


def round_to_int_grid(weight: torch.Tensor) -> IntGrid:
    """Weights rounded to :data:`MAX_LEVEL` steps per side of each output
    channel's largest weight (what ``spike_dtype='int8-rounded'`` does to
    a layer :func:`find_int_grid` finds no grid for)."""
    w, amax = _per_channel(weight)
    scale = amax / MAX_LEVEL
    levels = torch.round(w / scale[:, None])
    moved = ((levels * scale[:, None] - w).abs().amax(1) / amax).max()
    return IntGrid(levels.to(torch.int8).reshape(weight.shape), scale,
                   float(moved))
