"""A BN (and a residual sum after it) whose arithmetic the neuron after it
does, in its own pass.

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
autograd, a residual in another layout or a state carried over), the neuron
has the BN (and the sum) run in place first (:meth:`Deferred.run`) and goes
on as if nothing had been deferred. A residual block adds its shortcut
with :func:`add_`: the sum too is then the neuron's, after the BN's output
as ATen rounds it.
"""
from typing import Optional

import torch

_ATTR = '_fastsnn_deferred_bn'


class Deferred:
    """An eval BN owed to ``x``, and a residual to add after it (left by
    :func:`add_`): ``run()`` them (ATen, in place), or hand
    :meth:`kernel_args` to the kernel."""

    def __init__(self, bn, factors):
        self.bn, self.factors, self.residual = bn, factors, None

    def run(self, x: torch.Tensor) -> None:
        self.bn.normalize_(x)
        if self.residual is not None:
            x += self.residual

    def kernel_args(self):
        """(alpha, beta, fma, residual): :func:`..kernel._bn_args`."""
        return (*self.factors, self.residual)


def add_(out: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``out += other``, where ``out`` may carry a deferred BN: then the
    sum is left to the neuron as well (when ``other`` is laid out as
    ``out``), or the BN runs first. A residual block writes its sum with
    this (QResNet's ``bn2 -> + identity -> act2``)."""
    held = getattr(out, _ATTR, None)
    if held is not None and held[1] == out._version and \
            held[0].residual is None and other is not out and \
            other.shape == out.shape and other.stride() == out.stride() \
            and other.dtype == out.dtype and other.device == out.device:
        held[0].residual = other
        return out
    owed = take(out)
    if owed is not None:
        owed.run(out)
    out += other
    return out


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
