"""Spikes an SNN fires while it runs (what a neuromorphic chip would pay
for), counted by forward hooks on its neurons.

A neuron's output is spike * theta per step, so its non-zero outputs are
its spikes; negative spikes of the signed neuron count too (each one is an
event). The count covers every pass the hooks see, and the runner's
first batch of an input shape adds a one-image, one-step pass that sizes
the later ones: count on a batch whose shape the model has seen, as
``tools/image_demo.py`` does.
"""
from contextlib import contextmanager

import torch

from ..spiking import neurons_of
from ..utils.modules import forward_hooks


class SpikeCounter:
    """Running total of spikes (``total``) seen by :func:`count_spikes`."""

    def __init__(self):
        self.total = 0

    def add(self, output: torch.Tensor):
        self.total += int(torch.count_nonzero(output))


@contextmanager
def count_spikes(model):
    """Count the spikes of ``model``'s neurons in the ``with`` block; yields
    a :class:`SpikeCounter`."""
    neurons = neurons_of(model)
    if not neurons:
        raise ValueError('the model has no spiking neurons: convert it first '
                         '(convert_to_snn or model.to_snn)')
    counter = SpikeCounter()

    def make_hook(neuron):
        return lambda mod, args, out: counter.add(out)
    with forward_hooks(neurons, make_hook):
        yield counter
