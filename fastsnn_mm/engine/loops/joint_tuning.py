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

from ...spiking import functional as spiking_fn
from ...spiking.run_state import neurons_of, timestep_run
from ...utils.modules import forward_hooks


@contextmanager
def straight_through(model, T):
    """Within: each neuron's spikes carry the gradient of its input (an
    input given once, [B, ...], for all T steps is repeated per step).
    ``T`` is kept for callers; the run says how many steps a call has."""

    def hook(module, inputs, out):
        run = module.timestep_run
        steps, constant = run.view(inputs[0])
        x = spiking_fn.repeat_steps(steps, run.steps) \
            if constant and run.steps > 1 else inputs[0]
        return spiking_fn.straight_through(out, x)

    with forward_hooks(neurons_of(model), lambda m: hook):
        yield


def output_loss(snn, qann, x):
    """MSE of the SNN's time-averaged path outputs against the QANN's, with
    a gradient for every weight of the SNN."""
    T = snn.snn_cfg['timesteps']
    with torch.no_grad():
        target = spiking_fn.flatten_outputs(qann.spiking_path(x))[0]
    with timestep_run(snn, T, x.shape[0], 'folded') as run, \
            straight_through(snn, T):
        out = [run.mean_over_time(t) for t in
               spiking_fn.flatten_outputs(snn.spiking_path(x))[0]]
    return sum(F.mse_loss(o, t) for o, t in zip(out, target))


def cosine_factor(step, total):
    """Learning-rate factor at ``step`` of ``total``: 1 -> 0, half a cosine."""
    return 0.5 * (1.0 + math.cos(math.pi * step / max(total, 1)))
