"""Which weights belong to which spiking layer, found by tracing execution."""
import torch
from torch import nn

from ...spiking import IFNeuron
from ...spiking.runner import timestep_context

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
    hooks = [m.register_forward_hook(record) for m in snn.modules()
             if isinstance(m, (IFNeuron,) + _TUNABLE)]
    x = x[:1]  # one image is enough to see the execution order
    try:
        with torch.no_grad(), timestep_context(
                snn, snn.snn_cfg['timesteps'], 1, 'folded'):
            snn.spiking_path(x)
    finally:
        for h in hooks:
            h.remove()
    groups, pending, seen = [], [], set()
    for m in order:
        if m in seen:
            continue
        seen.add(m)
        if isinstance(m, IFNeuron):
            groups.append((names[m], [p for mod in pending for p in mod.parameters(recurse=False)]))
            pending = []
        else:
            pending.append(m)
    groups.append((None, [p for mod in pending for p in mod.parameters(recurse=False)]))
    return groups
