"""Run a network's spiking path over T time steps (folded or streaming).

Folded: the input is presented once with batch B; the first neuron expands
it to T steps, later layers see [T*B, ...], and outputs are averaged over T.
Streaming: the path is called T times on the same input; neurons keep state.
Folded in chunks (``time_chunk``): ceil(T / chunk) calls, each folding up to
chunk steps into the batch, state carried over between calls.
Either way the neuron state is reset before every batch by the runner, never
left to the caller.
"""
from contextlib import contextmanager

import torch

from .neurons import IFNeuron

MODES = ('folded', 'streaming')

#: By default folded mode presents as many steps per pass as keep each
#: time-folded activation under this size. Folding all T steps at once makes
#: every tensor T times the QANN's; past glibc's mmap threshold (32 MiB) each
#: one is fresh memory from the OS, and the page faults cost more than the
#: passes saved (measured in benchmarks/bench_snn.py). It also bounds memory.
FOLD_BYTES = 16 * 2**20


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


def check_time_chunk(time_chunk, mode: str, timesteps: int):
    """Steps per call: 1 (streaming), the chunk asked for, or None (folded,
    chosen from :data:`FOLD_BYTES`)."""
    if time_chunk is None:
        return None if mode == 'folded' else 1
    if mode != 'folded':
        raise ValueError('time_chunk applies to folded mode only '
                         f'(mode={mode!r})')
    if isinstance(time_chunk, bool) or not isinstance(time_chunk, int) \
            or time_chunk < 1:
        raise ValueError(
            f'time_chunk must be an integer >= 1, got {time_chunk!r}')
    return min(time_chunk, timesteps)


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


def _flatten(out, leaves):
    """Tensors of a nested output, in order; returns a rebuild function."""
    if isinstance(out, torch.Tensor):
        leaves.append(out)
        return lambda it: next(it)
    if isinstance(out, (list, tuple)):
        parts = [_flatten(o, leaves) for o in out]
        return lambda it: type(out)(p(it) for p in parts)
    if isinstance(out, dict):
        parts = {k: _flatten(v, leaves) for k, v in out.items()}
        return lambda it: {k: p(it) for k, p in parts.items()}
    return lambda it: out


class _Average:
    """Running sum of a T-step output, one step at a time in time order, so
    folded, chunked and streaming runs give the same bits."""

    def __init__(self, T, B):
        self.T, self.B = T, B
        self.rebuild, self.sums, self.const = None, None, None

    def add(self, out, steps):
        leaves = []
        rebuild = _flatten(out, leaves)
        if self.sums is None:
            self.rebuild = rebuild
            self.sums = [None] * len(leaves)
            self.const = [False] * len(leaves)
        for i, t in enumerate(leaves):
            if self.const[i]:
                continue
            if t.dim() == 0:  # already pooled over the steps of this call
                per_step = (t * steps, )
            elif steps > 1 and t.shape[0] == steps * self.B:
                per_step = t.reshape(steps, self.B, *t.shape[1:]).unbind(0)
            elif steps == 1:
                per_step = (t, )
            else:  # did not pass through any neuron: constant over time
                self.sums[i], self.const[i] = t, True
                continue
            for step in per_step:
                self.sums[i] = step if self.sums[i] is None \
                    else self.sums[i] + step

    def mean(self):
        T = self.T
        means = [s if c or T == 1 else s / T
                 for s, c in zip(self.sums, self.const)]
        return self.rebuild(iter(means))


def run_timesteps(model, path, x, timesteps: int, mode: str = 'folded',
                  time_chunk: int = None):
    """Call ``path(x)`` as a T-step SNN and return outputs averaged over T.

    ``model`` is the module holding the neurons; ``path`` the callable that
    maps the (time-invariant) input to the last linear layers' outputs.
    ``time_chunk`` (folded mode) presents at most that many steps per call.
    None plans the passes so that each folded activation stays under
    :data:`FOLD_BYTES`: the whole batch with all T steps when it fits, else
    slices of the batch with all T steps, else the whole batch in chunks of
    steps (pass T or more to fold all steps at once). Every choice gives the
    same bits.
    """
    T = check_timesteps(timesteps)
    chunk = check_time_chunk(time_chunk, check_mode(mode), T)
    if chunk is not None:
        return _run(model, path, x, T, mode, chunk)
    B = x.shape[0]
    shape = _input_shape_info(model, path, x, T)
    per_sample = shape['step_bytes']
    if per_sample * T * B <= FOLD_BYTES:
        return _run(model, path, x, T, mode, T)
    per_slice = int(FOLD_BYTES // max(per_sample * T, 1))
    if per_slice >= 1 and shape['sliceable']:
        starts = range(0, B, per_slice)
        outs = [_run(model, path, x[i:i + per_slice], T, mode, T)
                for i in starts]
        merged = _cat_batches(outs, [len(x[i:i + per_slice]) for i in starts])
        if merged is not None:
            return merged
        shape['sliceable'] = False  # an output without the batch first
    return _run(model, path, x, T, mode, _auto_chunk(per_sample * B, T))


def _run(model, path, x, T, mode, chunk):
    """One batch through all T steps, ``chunk`` steps per call of the path."""
    B = x.shape[0]
    avg = _Average(T, B)
    with timestep_context(model, T, B, mode) as neurons:
        start = 0
        while start < T:
            steps = min(chunk, T - start)
            for n in neurons:
                n.begin_step(steps)
            avg.add(path(x), steps)
            start += steps
    return avg.mean()


def _input_shape_info(model, path, x, T):
    """What the plan needs about inputs of this shape, learnt once: the
    bytes of one step's largest neuron input for one image (from a
    one-image, one-step pass) and whether outputs can be cut by batch."""
    known = model.__dict__.setdefault('_fastsnn_input_shapes', {})
    key = tuple(x.shape[1:])
    if key not in known:
        with timestep_context(model, T, 1, 'folded') as neurons:
            for n in neurons:
                n.begin_step(1)
            path(x[:1])
            step_bytes = max((n.step_bytes for n in neurons), default=0)
        known[key] = dict(step_bytes=step_bytes, sliceable=True)
    return known[key]


def _cat_batches(outs, sizes):
    """Outputs of consecutive batch slices joined along the batch axis, or
    None when some output does not have the batch first."""
    flat = []
    for out, size in zip(outs, sizes):
        leaves = []
        rebuild = _flatten(out, leaves)
        if any(t.dim() == 0 or t.shape[0] != size for t in leaves):
            return None
        flat.append(leaves)
    if len({len(leaves) for leaves in flat}) != 1:
        return None
    joined = [torch.cat(parts) for parts in zip(*flat)]
    return rebuild(iter(joined))


def _auto_chunk(step_bytes, T):
    return max(1, min(T, int(FOLD_BYTES // max(step_bytes, 1))))
