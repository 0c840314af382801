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

from ...spiking.runner import timestep_context

SURROGATES = ('identity', 'clip')


class _Stop(Exception):
    """Carries an activation out of a forward pass that need not go on."""

    def __init__(self, value):
        super().__init__()
        self.value = value


def time_mean(t, T, B):
    """[T*B, ...] -> [B, ...] (mean over steps); [B, ...] is returned as is."""
    return t.reshape(T, B, *t.shape[1:]).mean(0) if t.shape[0] == T * B else t


def flatten_outputs(out):
    """Tensors of a nested output, in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flatten_outputs(o)]
    return []


def _run_until(model, name, x, on_output):
    """Run ``model.spiking_path(x)`` until module ``name`` has produced its
    output; return ``on_output(module, inputs, output)``."""
    mod = model.get_submodule(name)

    def grab(m, inputs, out):
        raise _Stop(on_output(m, inputs, out))
    handle = mod.register_forward_hook(grab)
    try:
        model.spiking_path(x)
    except _Stop as stop:
        return stop.value
    finally:
        handle.remove()
    raise RuntimeError(f'layer {name} was not reached by the spiking path')


def qann_target(qann, name, x):
    """QANN activation at QuantReLU ``name`` (None: the path's outputs)."""
    with torch.no_grad():
        if name is None:
            return flatten_outputs(qann.spiking_path(x))
        return [_run_until(qann, name, x, lambda m, i, o: o)]


def snn_rate(snn, name, x, surrogate='identity', quant_relu=None):
    """SNN firing rate at neuron ``name`` (None: the time-averaged path
    outputs), with a straight-through gradient (see module docstring)."""
    T = snn.snn_cfg['timesteps']
    B = x.shape[0]
    with timestep_context(snn, T, B, 'folded'):
        if name is None:
            return [time_mean(t, T, B)
                    for t in flatten_outputs(snn.spiking_path(x))]

        def rate(m, inputs, out):
            pre = time_mean(inputs[0], T, B)
            value = time_mean(out, T, B).detach()
            sur = pre if surrogate == 'identity' else quant_relu(pre)
            return sur + (value - sur).detach()
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
        count = torch.round(rate[0].detach() * T / theta)
        level = torch.floor(target[0] * T / theta + 0.5)
        mismatch = (count != level).float().mean()
    return loss, mismatch
