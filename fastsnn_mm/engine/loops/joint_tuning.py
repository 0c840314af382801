"""The last stage of layer-wise fine-tuning: every SNN weight tuned at once.

Why a joint stage: in the demo networks about nine tenths of an inner
layer's spike-count mismatch is *inherited* (``collect_layer_stats`` splits
it): the layer's summed input already asks for another count, because
earlier layers' counts were off for that image. Those errors differ from
image to image, so the weights of one layer, tuned against the QANN's
activation, cannot take them back out: the per-layer MSE hardly moves, and
shifting each channel's bias so that the SNN's mean input equals the
QANN's, layer by layer, did not lower the mismatch on held-out images of
the demos (it rose a little). What weights can do is let later layers
live with the errors that earlier layers make, which needs a gradient
that crosses layers.

So after the layer groups, all weights are tuned together so that the
SNN's outputs follow the QANN's (MSE of the time-averaged outputs): the
forward pass is the SNN itself, spikes and all, and the backward pass goes
straight through every neuron (d output / d input = 1 at each step, the
rate surrogate of :mod:`.layer_targets` applied at every neuron, no
backpropagation through time). The learning rate decays to zero over the
stage (half a cosine), and the loop keeps the result only if the task
metric did not fall.
"""
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ...spiking import IFNeuron
from ...spiking.runner import timestep_context
from .layer_targets import flatten_outputs, time_mean


@contextmanager
def straight_through(model, T):
    """Within: each neuron's spikes carry the gradient of its input (an
    input given once, [B, ...], for all T steps is repeated per step)."""

    def hook(module, inputs, out):
        x = inputs[0]
        if x.shape[0] != out.shape[0]:
            x = x.unsqueeze(0).expand(T, *x.shape).reshape(out.shape)
        return out + (x - x.detach())

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, IFNeuron)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def output_loss(snn, qann, x):
    """MSE of the SNN's time-averaged path outputs against the QANN's, with
    a gradient for every weight of the SNN."""
    T = snn.snn_cfg['timesteps']
    B = x.shape[0]
    with torch.no_grad():
        target = flatten_outputs(qann.spiking_path(x))
    with timestep_context(snn, T, B, 'folded'), straight_through(snn, T):
        out = [time_mean(t, T, B)
               for t in flatten_outputs(snn.spiking_path(x))]
    return sum(F.mse_loss(o, t) for o, t in zip(out, target))


def cosine_factor(step, total):
    """Learning-rate factor at ``step`` of ``total``: 1 -> 0, half a cosine."""
    return 0.5 * (1.0 + math.cos(math.pi * step / max(total, 1)))
