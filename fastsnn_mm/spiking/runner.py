"""Run a network's spiking path over T time steps (folded or streaming).

Folded: the input is presented once with batch B; the first neuron expands
it to T steps, later layers see [T*B, ...], and outputs are averaged over T.
Streaming: the path is called T times on the same input; neurons keep state.
Either way the neuron state is reset before every batch by the runner, never
left to the caller.
"""
from contextlib import contextmanager

import torch

from .neurons import IFNeuron

MODES = ('folded', 'streaming')


def neurons_of(model):
    return [m for m in model.modules() if isinstance(m, IFNeuron)]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f'SNN mode must be one of {MODES}, got {mode!r}')
    return mode


def check_timesteps(timesteps) -> int:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) \
            or timesteps < 1:
        raise ValueError(f'timesteps must be an integer >= 1, got {timesteps!r}')
    return timesteps


@contextmanager
def timestep_context(model, timesteps: int, batch_size: int, mode: str):
    """Configure every neuron for one batch and clear its state after."""
    neurons = neurons_of(model)
    for n in neurons:
        n.timesteps, n.batch_size, n.mode = timesteps, batch_size, mode
        n.reset()
    try:
        yield neurons
    finally:
        for n in neurons:
            n.reset()
            n.batch_size = None


def _map(fn, out):
    if isinstance(out, torch.Tensor):
        return fn(out)
    if isinstance(out, (list, tuple)):
        return type(out)(_map(fn, o) for o in out)
    if isinstance(out, dict):
        return {k: _map(fn, v) for k, v in out.items()}
    return out


def _add(a, b):
    if isinstance(a, torch.Tensor):
        return a + b
    if isinstance(a, (list, tuple)):
        return type(a)(_add(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: _add(a[k], b[k]) for k in a}
    return a


def run_timesteps(model, path, x, timesteps: int, mode: str = 'folded'):
    """Call ``path(x)`` as a T-step SNN and return outputs averaged over T.

    ``model`` is the module holding the neurons; ``path`` the callable that
    maps the (time-invariant) input to the last linear layers' outputs.
    """
    T = check_timesteps(timesteps)
    B = x.shape[0]
    with timestep_context(model, T, B, check_mode(mode)) as neurons:
        if mode == 'streaming':
            total = None
            for _ in range(T):
                for n in neurons:
                    n.begin_step()
                out = path(x)
                total = out if total is None else _add(total, out)
            return _map(lambda t: t / T, total)
        out = path(x)

    def fold_mean(t):
        if T > 1 and t.shape[0] == T * B:
            steps = t.reshape(T, B, *t.shape[1:])
            total = steps[0]
            for step in steps[1:]:  # the streaming mode's summation order,
                total = total + step  # so both modes agree bit for bit
            return total / T
        return t  # did not pass through any neuron: constant over time
    return _map(fold_mean, out)
