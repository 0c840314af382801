"""Run a network's spiking path over T time steps (folded or streaming).

Folded: the input is presented once with batch B; the first neuron expands
it to T steps, later layers see [T*B, ...], and outputs are averaged over T.
Streaming: the path is called T times on the same input; neurons keep state.
Folded in chunks (``time_chunk``): ceil(T / chunk) calls, each folding up to
chunk steps into the batch, state carried over between calls.
Both modes may cut a large batch into slices run one after the other
(samples are independent in inference): folded to keep each folded tensor
small, streaming to bound the membrane state every neuron keeps. The plan
is the device's (:func:`plan_for`): small passes on the CPU, where memory
traffic decides; all T steps of the batch at once on a GPU while free
device memory allows, where launches and small batches waste it.
Either way the neuron state is reset before every batch by the runner, never
left to the caller.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import torch

from .functional import count_dtype, new_state
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
#: CPU only: see :data:`DEVICE_FOLD_SHARE` for GPUs.
FOLD_BYTES = 16 * 2**20

#: Streaming mode keeps a membrane (and, signed, a count) for every neuron
#: of the network for the whole run: 5 bytes per activation of every layer,
#: where the QANN holds only the few activations alive at once. A batch
#: whose state would pass both this size and STATE_ACTIVATIONS times the
#: batch's largest activation (which the QANN itself must hold) runs in
#: slices, so peak memory stays within a small factor of the QANN's at any
#: batch size (measured in benchmarks/bench_snn.py). CPU only.
STATE_BYTES = 4 * 2**20
STATE_ACTIVATIONS = 2

#: On a GPU few large passes are fast and small ones waste launches (all T
#: steps folded at once was 4-13x faster than the CPU plan on an H200 for
#: QResNet-18): folded mode presents all T steps of the whole batch unless
#: the largest time-folded activation would pass this share of the free
#: device memory (a pass holds a few such tensors at once), then slices the
#: batch, then chunks the steps.
DEVICE_FOLD_SHARE = 1 / 8

#: Streaming on a GPU slices the batch only when all neurons' state would
#: pass this share of the free device memory.
DEVICE_STATE_SHARE = 1 / 4

#: Optional cap of the GPU plan, None by default (off): a folded activation
#: of at most this many times the QANN batch's largest activation (and at
#: least one image with all T steps), so peak memory stays near the
#: QANN's while each pass still presents a batch at least the QANN's size.
DEVICE_FOLD_ACTIVATIONS = None


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
    chosen by the device's plan, :func:`plan_for`)."""
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


class TimestepRun:
    """One batch's run as its neurons see it.

    The runner says how many steps each call of the path presents
    (:meth:`begin_pass`); a neuron reads ``steps`` and ``batch_size`` to
    view its input, and asks :meth:`state` for the membrane and count of
    its current call site when the state carries over between calls. An mm
    block may call one activation module at several places: each call site
    is its own neuron layer with its own state, in call order.
    """

    def __init__(self, timesteps: int, batch_size: int, mode: str):
        self.timesteps = check_timesteps(timesteps)
        self.batch_size = int(batch_size)
        self.mode = check_mode(mode)
        #: steps presented by the current call of the path
        self.steps = self.timesteps if mode == 'folded' else 1
        self._states = {}  # neuron -> [(v, count) per call site]
        self._calls = {}  # neuron -> call sites seen in this pass

    @property
    def fresh(self) -> bool:
        """True when one call presents all T steps: nothing carries over."""
        return self.steps == self.timesteps

    def begin_pass(self, steps: int):
        """A new call of the path starts, presenting ``steps`` steps."""
        self.steps = int(steps)
        self._calls.clear()

    def state(self, neuron, like, theta):
        """The (membrane, count) of ``neuron``'s next call site, made on
        ``like``'s device and dtype at its first call."""
        sites = self._states.setdefault(neuron, [])
        k = self._calls.get(neuron, 0)
        self._calls[neuron] = k + 1
        if k == len(sites):
            sites.append(new_state(like, theta, neuron.signed,
                                   self.timesteps))
        return sites[k]

    def states_of(self, neuron):
        return self._states.get(neuron, [])


@contextmanager
def timestep_run(model, timesteps: int, batch_size: int, mode: str):
    """Attach a fresh :class:`TimestepRun` to every neuron of ``model`` for
    one batch; detach it (and its state) after."""
    run = TimestepRun(timesteps, batch_size, mode)
    neurons = neurons_of(model)
    for n in neurons:
        n.timestep_run = run
    try:
        yield run
    finally:
        for n in neurons:
            n.timestep_run = None


@contextmanager
def timestep_context(model, timesteps: int, batch_size: int, mode: str):
    """Run ``model``'s neurons for one batch (every call of the path
    presents all T steps in folded mode, one in streaming) and clear their
    state after; yields the neurons."""
    with timestep_run(model, timesteps, batch_size, mode):
        yield neurons_of(model)


@dataclass(frozen=True)
class PassPlan:
    """How one batch goes through its T steps.

    steps: time steps each call of the path presents (1: streaming).
    per_slice: images per slice of the batch; None runs it whole.
    unsliced_steps: steps per call when the outputs turn out not to be
        sliceable (no batch axis).
    """
    steps: int
    per_slice: Optional[int] = None
    unsliced_steps: int = 1


def device_free_bytes(device) -> Optional[int]:
    """Memory a run may still take on ``device``: free device memory plus
    what torch's caching allocator holds unused; None when unknown (no
    limit: the ``meta`` device, devices without a query)."""
    device = torch.device(device)
    if device.type != 'cuda':
        return None
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - \
        torch.cuda.memory_allocated(device)
    return free + max(cached, 0)


def plan_for(device, mode: str, timesteps: int, batch: int, shape,
             free_bytes: Optional[int] = None) -> PassPlan:
    """The pass plan for a batch of ``batch`` inputs on ``device``.

    ``shape``: the sizing pass's figures (:func:`input_shape_info`).
    The CPU plan keeps every folded activation under :data:`FOLD_BYTES`
    and the streaming state under :data:`STATE_BYTES`; any other device
    (CUDA, and ``meta`` as its stand-in) folds all T steps of the whole
    batch unless that passes a share of ``free_bytes`` (default: queried,
    :func:`device_free_bytes`; None means no limit).
    """
    T, device = check_timesteps(timesteps), torch.device(device)
    step_bytes, state_bytes = shape['step_bytes'], shape['state_bytes']
    if device.type == 'cpu':
        fold_budget = FOLD_BYTES
        state_budget = max(STATE_BYTES,
                           STATE_ACTIVATIONS * step_bytes * batch)
    else:
        free = device_free_bytes(device) if free_bytes is None \
            else free_bytes
        if free is None:
            fold_budget = state_budget = float('inf')
        else:
            fold_budget = int(free * DEVICE_FOLD_SHARE)
            state_budget = int(free * DEVICE_STATE_SHARE)
        if DEVICE_FOLD_ACTIVATIONS is not None:
            fold_budget = min(fold_budget, max(
                DEVICE_FOLD_ACTIVATIONS * step_bytes * batch, step_bytes * T))
    if check_mode(mode) == 'streaming':
        per_slice = _per_slice(state_budget, state_bytes, batch)
        return PassPlan(1, per_slice if per_slice < batch else None, 1)
    if step_bytes * T * batch <= fold_budget:
        return PassPlan(T, None, T)
    chunk = _auto_chunk(step_bytes * batch, T, fold_budget)
    per_slice = int(fold_budget // max(step_bytes * T, 1))
    if per_slice >= 1:
        return PassPlan(T, per_slice, chunk)
    return PassPlan(chunk, None, chunk)


def _per_slice(budget, per_image, batch):
    if budget == float('inf'):
        return batch
    return min(batch, max(1, int(budget // max(per_image, 1))))


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
    None takes the device's plan (:func:`plan_for`): on the CPU each folded
    activation stays under :data:`FOLD_BYTES` (the whole batch with all T
    steps when it fits, else slices of the batch with all T steps, else the
    whole batch in chunks of steps; pass T or more to fold all steps at
    once), and streaming runs slices of the batch whose neuron state fits
    :data:`STATE_BYTES`, or twice the batch's largest activation when that
    is more; on a GPU the same choices are made against a share of the free
    device memory. Plans that keep the batch whole give the same bits;
    slices agree to float rounding (see :func:`_in_slices`).
    """
    check_snn_input(model, x)  # NaN/Inf or wrong channels: refused
    T = check_timesteps(timesteps)
    chunk = check_time_chunk(time_chunk, check_mode(mode), T)
    if mode == 'folded' and chunk is not None:
        return _run(model, path, x, T, mode, chunk)
    if mode == 'streaming' and x.shape[0] == 1:  # nothing to slice
        return _run(model, path, x, T, mode, 1)
    shape = input_shape_info(model, path, x, T)
    plan = plan_for(x.device, mode, T, x.shape[0], shape)
    return run_plan(model, path, x, T, mode, plan, shape)


def run_plan(model, path, x, T, mode, plan: PassPlan, shape):
    """Run one batch as ``plan`` says (slices fall back to whole-batch
    calls of ``plan.unsliced_steps`` steps when outputs cannot be cut)."""
    if plan.per_slice is not None:
        out = _in_slices(model, path, x, T, mode, plan.steps,
                         plan.per_slice, shape)
        if out is not None:
            return out
        return _run(model, path, x, T, mode, plan.unsliced_steps)
    return _run(model, path, x, T, mode, plan.steps)


def streaming_slice(shape, batch: int) -> int:
    """Images per streaming slice on the CPU for a batch of inputs of this
    shape (``shape``: the sizing pass's figures)."""
    plan = plan_for('cpu', 'streaming', 1, batch, shape)
    return batch if plan.per_slice is None else plan.per_slice


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
    with timestep_run(model, T, B, mode) as run:
        start = 0
        while start < T:
            steps = min(chunk, T - start)
            run.begin_pass(steps)
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
    # converted again with others); dtype and device set the rest
    key = (tuple(x.shape[1:]), T, x.dtype, str(x.device),
           tuple(sorted({type(n).__name__ for n in neurons_of(model)})))
    if key not in known:
        inputs, state = [], []
        with timestep_run(model, T, 1, 'folded') as run:
            hooks = [n.register_forward_hook(_measure(inputs, state, T))
                     for n in neurons_of(model)]
            try:
                run.begin_pass(1)
                path(x[:1])
            finally:
                for h in hooks:
                    h.remove()
        known[key] = dict(step_bytes=max(inputs, default=0),
                          state_bytes=sum(state), sliceable=True)
    return known[key]


def _measure(inputs, state, T):
    """Forward hook of the sizing pass: bytes of this call site's input
    (one image, one step) and of the state it keeps (membrane in the
    input's dtype, plus the signed rule's count)."""
    count_bytes = count_dtype(T).itemsize

    def hook(neuron, args, output):
        x = args[0]
        inputs.append(x.numel() * x.element_size())
        per_value = x.element_size() + (count_bytes if neuron.signed else 0)
        state.append(x.numel() * per_value)
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


def _auto_chunk(step_bytes, T, budget=None):
    """Steps per call keeping a folded activation of the whole batch under
    ``budget`` (default :data:`FOLD_BYTES`)."""
    budget = FOLD_BYTES if budget is None else budget
    if budget == float('inf'):
        return T
    return max(1, min(T, int(budget // max(step_bytes, 1))))
