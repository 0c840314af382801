"""A BN whose arithmetic the neuron after it does, in its own pass.

An eval BN followed for certain by a neuron (declared ``norm_act_pairs``,
``nn.Sequential`` neighbours, an mmcv ``ConvModule`` whose ``act`` comes
right after ``norm``: :func:`.fold_bn.norm_act_slots`) need not write its
output at all: the C neuron kernel reads the conv's output and computes
x * alpha + beta per channel before its update, in registers. That is one
pass over T steps of activation fewer per such layer.

The BN (:class:`.inplace_bn.InPlaceBatchNorm2d`) hangs a :class:`Deferred`
on the conv's output and returns it unchanged; the neuron takes it
(:func:`take`) when its input is that very tensor at that version. The
factors are ATen's own: checked once per BN and parameter version against
ATen's BN on part of the real input, bit for bit, or the BN runs itself.
Wherever the kernel cannot take it (another backend, a constant input,
autograd), the neuron has the BN run in place first (:meth:`Deferred.run`)
and goes on as if nothing had been deferred.
"""
from typing import Optional

import torch

_ATTR = '_fastsnn_deferred_bn'


class Deferred:
    """An eval BN owed to ``x``: ``run()`` it (ATen, in place), or hand
    ``factors`` ((alpha, beta), float32 [C]) to the kernel."""

    def __init__(self, bn, factors):
        self.bn, self.factors = bn, factors

    def run(self, x: torch.Tensor) -> None:
        self.bn.normalize_(x)


def defer(x: torch.Tensor, bn, factors) -> torch.Tensor:
    """Hang ``bn``'s work on ``x``; returns ``x`` unchanged."""
    setattr(x, _ATTR, (Deferred(bn, factors), x._version))
    return x


def take(x: torch.Tensor) -> Optional[Deferred]:
    """The BN owed to ``x`` (then no longer hung on it), or None."""
    held = getattr(x, _ATTR, None)
    if held is None:
        return None
    delattr(x, _ATTR)
    if held[1] != x._version:
        raise RuntimeError(
            f'{type(held[0].bn).__name__} left its work to the neuron after '
            'it, but its output was changed in place before the neuron: the '
            'pair declared BN -> activation (norm_act_pairs) is not what '
            'forward runs; fix the declaration')
    return held[0]
