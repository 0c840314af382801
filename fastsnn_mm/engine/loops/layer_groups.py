"""Which weights belong to which spiking layer, found by tracing execution."""
import torch
from torch import nn

from ...spiking import IFNeuron
from ...spiking.runner import timestep_context
from ...utils.modules import forward_hooks

_TUNABLE = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm,
            nn.ConvTranspose2d, nn.GroupNorm, nn.LayerNorm)


def assign_layer_groups(snn, x):
    """Return [(neuron name | None, params)] in execution order.

    Every weighted module is given to the first neuron executed after it
    (it feeds that neuron); those after the last neuron form the final group
    (name None). Order: shallow to deep, as the network runs.
    """
    names = {m: n for n, m in snn.named_modules()}
    order = []

    def record(m, i, o):
        order.append(m)
    watched = [m for m in snn.modules()
               if isinstance(m, (IFNeuron,) + _TUNABLE)]
    x = x[:1]  # one image is enough to see the execution order
    with forward_hooks(watched, lambda m: record), torch.no_grad(), \
            timestep_context(snn, snn.snn_cfg['timesteps'], 1, 'folded'):
        snn.spiking_path(x)
    groups, pending, seen = [], [], set()
    for m in order:
        if m in seen:
            continue
        seen.add(m)
        if isinstance(m, IFNeuron):
            groups.append((names[m], _own_params(pending)))
            pending = []
        else:
            pending.append(m)
    groups.append((None, _own_params(pending)))
    return groups


def _own_params(modules):
    return [p for mod in modules for p in mod.parameters(recurse=False)]
