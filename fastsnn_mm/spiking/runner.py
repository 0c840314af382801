"""Run a network's spiking path over T time steps (folded or streaming).

Folded: the input is presented once with batch B; the first neuron expands
it to T steps, later layers see [T*B, ...], and outputs are averaged over T.
Streaming: the path is called T times on the same input; neurons keep state.
Folded in chunks (``time_chunk``): ceil(T / chunk) calls, each folding up to
chunk steps into the batch, state carried over between calls.
Both modes may cut a large batch into slices run one after the other
(samples are independent in inference): folded to keep each folded tensor
small, streaming to bound the membrane state every neuron keeps.
Either way the neuron state is reset before every batch by the runner, never
left to the caller.
"""
from contextlib import contextmanager

import torch

from .input_checks import check_snn_input
from .neurons import IFNeuron

MODES = ('folded', 'streaming')

#: By default folded mode presents as many steps per pass as keep each
#: time-folded activation under this size. Folding all T steps at once makes
#: every tensor T times the QANN's; past glibc's mmap threshold (32 MiB) each
#: one is fresh memory from the OS, and the page faults cost more than the
#: passes saved (measured in benchmarks/bench_snn.py). It also bounds memory.
#: Below that size glibc may still hand freed memory back to the OS; see
#: :mod:`fastsnn_mm.utils.allocator` for a process that can keep it.
FOLD_BYTES = 16 * 2**20

#: Streaming mode keeps a membrane (and, signed, a count) for every neuron
#: of the network for the whole run: 5 bytes per activation of every layer,
#: where the QANN holds only the few activations alive at once. A batch
#: whose state would pass both this size and STATE_ACTIVATIONS times the
#: batch's largest activation (which the QANN itself must hold) runs in
#: slices, so peak memory stays within a small factor of the QANN's at any
#: batch size (measured in benchmarks/bench_snn.py).
STATE_BYTES = 4 * 2**20
STATE_ACTIVATIONS = 2


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
    steps (pass T or more to fold all steps at once). Streaming runs slices
    of the batch whose neuron state fits :data:`STATE_BYTES`, or twice the
    batch's largest activation when that is more. Plans that
    keep the batch whole give the same bits; slices agree to float
    rounding (see :func:`_in_slices`).
    """
    check_snn_input(model, x)  # NaN/Inf or wrong channels: refused
    T = check_timesteps(timesteps)
    chunk = check_time_chunk(time_chunk, check_mode(mode), T)
    if mode == 'streaming':
        return _streaming(model, path, x, T)
    if chunk is not None:
        return _run(model, path, x, T, mode, chunk)
    B = x.shape[0]
    shape = input_shape_info(model, path, x, T)
    per_sample = shape['step_bytes']
    if per_sample * T * B <= FOLD_BYTES:
        return _run(model, path, x, T, mode, T)
    per_slice = int(FOLD_BYTES // max(per_sample * T, 1))
    out = _in_slices(model, path, x, T, mode, T, per_slice, shape)
    if out is not None:
        return out
    return _run(model, path, x, T, mode, _auto_chunk(per_sample * B, T))


def _streaming(model, path, x, T):
    """One step per call; the batch in slices whose state fits the budget
    of :data:`STATE_BYTES` / :data:`STATE_ACTIVATIONS` (at least one image
    a slice)."""
    B = x.shape[0]
    if B == 1:  # nothing to slice: no sizing pass
        return _run(model, path, x, T, 'streaming', 1)
    shape = input_shape_info(model, path, x, T)
    per_slice = streaming_slice(shape, B)
    if per_slice < B:
        out = _in_slices(model, path, x, T, 'streaming', 1, per_slice, shape)
        if out is not None:
            return out
    return _run(model, path, x, T, 'streaming', 1)


def streaming_slice(shape, batch: int) -> int:
    """Images per streaming slice for a batch of inputs of this shape
    (``shape``: the sizing pass's figures)."""
    budget = max(STATE_BYTES, STATE_ACTIVATIONS * shape['step_bytes'] * batch)
    return min(batch, max(1, int(budget // max(shape['state_bytes'], 1))))


def slice_sizes(batch: int, per_slice: int):
    """Fewest slices of at most ``per_slice`` images, sizes within one."""
    n = -(-batch // per_slice)
    return [batch // n + (i < batch % n) for i in range(n)]


def _in_slices(model, path, x, T, mode, chunk, per_slice, shape):
    """The batch in consecutive slices of at most ``per_slice`` images,
    sizes balanced (32 by 12 -> 11, 11, 10), outputs joined; None when
    slicing cannot apply (an output without the batch axis, or a slice
    smaller than one image).

    A slice runs the same arithmetic per image, but a conv or linear kernel
    may round differently at another batch size (a one-image batch takes
    another code path; the QANN's outputs move in the last bit too), so
    sliced outputs agree with unsliced ones to float rounding.
    """
    if per_slice < 1 or not shape['sliceable']:
        return None
    sizes = slice_sizes(x.shape[0], per_slice)
    outs = [_run(model, path, part, T, mode, chunk)
            for part in x.split(sizes)]
    merged = _cat_batches(outs, sizes)
    if merged is None:
        shape['sliceable'] = False  # remembered for this input shape
    return merged


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


def input_shape_info(model, path, x, T):
    """What the plans need about inputs of this shape, learnt once from a
    one-image, one-step pass: the bytes of the largest neuron input
    (``step_bytes``), the bytes of state all neurons keep in streaming mode
    (``state_bytes``), and whether outputs can be cut by batch."""
    known = model.__dict__.setdefault('_fastsnn_input_shapes', {})
    # T and the neuron type set the count's bytes (a model may be
    # converted again with others)
    key = (tuple(x.shape[1:]), T,
           tuple(sorted({type(n).__name__ for n in neurons_of(model)})))
    if key not in known:
        state = []
        with timestep_context(model, T, 1, 'folded') as neurons:
            hooks = [n.register_forward_hook(_count_state(state))
                     for n in neurons]
            try:
                for n in neurons:
                    n.begin_step(1)
                path(x[:1])
            finally:
                for h in hooks:
                    h.remove()
            step_bytes = max((n.step_bytes for n in neurons), default=0)
        known[key] = dict(step_bytes=step_bytes, state_bytes=sum(state),
                          sliceable=True)
    return known[key]


def _count_state(sizes):
    """Forward hook: bytes of the state this call site keeps (membrane in
    the input's dtype, plus the signed rule's count)."""
    def hook(neuron, inputs, output):
        x = inputs[0]
        per_value = x.element_size() + (neuron.count_bytes if neuron.signed
                                        else 0)
        sizes.append(x.numel() * per_value)
    return hook


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
