"""What one fine-tuning step compares: the SNN's firing rate at a neuron
layer and the QANN's activation at the same place.

Spikes have no gradient, so the rate is made differentiable by a
straight-through surrogate that carries the SNN's rate as its value and
takes its gradient from the layer's time-averaged input:

- ``'identity'``: d rate / d input = 1 everywhere. A neuron that stays
  silent while the QANN fires (its mean input is negative) still gets
  pushed up; with the QuantReLU's own gradient, zero outside [0, alpha],
  exactly those neurons got no gradient and deep layers hardly moved.
- ``'clip'``: the frozen QuantReLU applied to that input (its STE
  gradient, zero outside [0, alpha]).

As rates are multiples of theta / T, the squared rate error is the
spike-count error squared: the MSE weighs exactly the neurons whose count
is off the QANN level, by how far.
"""
import torch
import torch.nn.functional as F

from ...spiking.functional import (
    flatten_outputs,
    qann_level,
    spike_count,
    straight_through,
)
from ...spiking.run_state import timestep_run
from ...utils.modules import forward_hooks

SURROGATES = ('identity', 'clip')


class _Stop(Exception):
    """Carries an activation out of a forward pass that need not go on."""

    def __init__(self, value):
        super().__init__()
        self.value = value


def _run_until(model, name, x, on_output):
    """Run ``model.spiking_path(x)`` until module ``name`` has produced its
    output; return ``on_output(module, inputs, output)``."""

    def grab(m, inputs, out):
        raise _Stop(on_output(m, inputs, out))
    try:
        with forward_hooks([model.get_submodule(name)], lambda m: grab):
            model.spiking_path(x)
    except _Stop as stop:
        return stop.value
    raise RuntimeError(f'layer {name} was not reached by the spiking path')


def qann_target(qann, name, x):
    """QANN activation at QuantReLU ``name`` (None: the path's outputs)."""
    with torch.no_grad():
        if name is None:
            return flatten_outputs(qann.spiking_path(x))[0]
        return [_run_until(qann, name, x, lambda m, i, o: o)]


def snn_rate(snn, name, x, surrogate='identity', quant_relu=None):
    """SNN firing rate at neuron ``name`` (None: the time-averaged path
    outputs), with a straight-through gradient (see module docstring)."""
    T = snn.snn_cfg['timesteps']
    with timestep_run(snn, T, x.shape[0], 'folded') as run:
        if name is None:
            return [run.mean_over_time(t)
                    for t in flatten_outputs(snn.spiking_path(x))[0]]

        def rate(m, inputs, out):
            pre = run.mean_over_time(inputs[0])
            value = run.mean_over_time(out).detach()
            sur = pre if surrogate == 'identity' else quant_relu(pre)
            return straight_through(value, sur)
        return [_run_until(snn, name, x, rate)]


def layer_loss(snn, qann, name, x, surrogate='identity', quant_relu=None):
    """(MSE of rate vs QANN activation, count mismatch or None, #neurons).

    The mismatch is the fraction of neurons whose spike count differs from
    the QANN level round(q * T / theta), as in :mod:`fastsnn_mm.analysis`.
    """
    target = qann_target(qann, name, x)
    rate = snn_rate(snn, name, x, surrogate, quant_relu)
    loss = sum(F.mse_loss(r, t) for r, t in zip(rate, target))
    mismatch = None
    if name is not None:
        theta = snn.get_submodule(name).theta
        T = snn.snn_cfg['timesteps']
        count = spike_count(rate[0].detach(), theta, T)
        level = qann_level(target[0], theta, T)
        mismatch = (count != level).float().mean()
    return loss, mismatch
