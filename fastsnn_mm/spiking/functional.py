"""The pure pieces of a spiking run: the neuron update and its dispatch, time
folding, nested outputs, the average over T, the straight-through rate and
the QANN level of a spike count.

These pieces hold no module state and guess nothing from tensor sizes: a
neuron (``neurons.py``) hands them its threshold and the steps the runner
presented; the runner, the fine-tuning loop and the analysis use the same
pieces, so the three agree bit for bit.

* :func:`new_state`, :func:`if_step`, :func:`if_loop`: the reference
  update of a neuron rule (:mod:`rules`: ``rule.step``), the definition
  every fused kernel is tested against bit for bit.
* :func:`if_folded`, :func:`if_stateful`: the same update through the
  fastest backend for the tensors and the rule at hand
  (:func:`backend_for`): the C kernel for float32 CPU tensors, the Triton
  kernel for CUDA tensors, when the rule names one (``fused_signed``); the
  reference loop for anything else (other dtypes on the CPU, ``meta``,
  tensors that need autograd, a rule no fused kernel implements). Both
  walk any dense layout (contiguous or channels-last, as oneDNN's int8
  convolution hands it over) and answer in the same one (:mod:`.layout`);
  a strided input (a slice) gets a dense copy first: one pass over it
  costs less than the reference loop's ten per step. A fused kernel also
  writes the spikes in the form their reader takes when asked
  (``codes``, :mod:`.spike_codes`), hung on the output.

Bits: a fused kernel repeats the reference's float operations in the same
order on the same device, so it gives the reference's bits there. Across
devices the layers around the neurons may round differently (on CUDA, cuDNN
picks algorithms per batch shape and TF32 is on for convolutions), so
"bit-identical" holds per device and per batch shape.
"""
import os

import torch

from . import kernel
from .layout import dense, walkable

# NEG_EPS and count_dtype lived here before the rules: still importable
from .rules import NEG_EPS, as_rule, count_dtype, neg_threshold  # noqa: F401
from .spike_codes import attach

#: ``FASTSNN_IF_KERNEL``: unset or '1' picks a backend per tensor; '0' runs
#: the reference loop everywhere (to time it); 'triton' prefers the Triton
#: kernel wherever it can run, which includes CPU tensors under Triton's
#: interpreter (``TRITON_INTERPRET=1``, for tests without a GPU).
KERNEL_ENV = 'FASTSNN_IF_KERNEL'


# -- the reference update -----------------------------------------------------
# ``rule`` below is a neuron rule (:mod:`rules`), its class or its name; a
# bool still stands for the signed (True) or unsigned (False) rule.

def new_state(like, theta, rule, timesteps: int):
    """The state a run of ``rule`` starts from (membrane at theta/2 and,
    for a rule that keeps one, a net spike count), on ``like``'s device
    and in its dtype."""
    return as_rule(rule).new_state(like, theta, timesteps)


def if_step(v, count, x, theta, rule):
    """One in-place update by ``rule``; returns the spike tensor
    (+1/0/-1)."""
    return as_rule(rule).step(v, count, x, theta)


def if_loop(x_steps, theta, rule, constant: bool, timesteps: int):
    """Reference T-step loop. ``x_steps`` is [T, ...] or, if ``constant``,
    one step's input [...] repeated T times. Returns spikes [T, ...]."""
    rule = as_rule(rule)
    shape = x_steps.shape if constant else x_steps.shape[1:]
    v, count = rule.new_state(x_steps.new_empty(shape), theta, timesteps)
    out = x_steps.new_empty((timesteps, *shape))
    for t in range(timesteps):
        out[t] = rule.step(v, count, x_steps if constant else x_steps[t],
                           theta)
    return out


# -- dispatch to the fastest backend -----------------------------------------

def _triton():
    # imported on first use: CPU runs never pay for importing Triton
    from . import triton_if
    return triton_if


def backend_for(x, *others, rule=None) -> str:
    """'c', 'triton' or 'reference': which update runs on these tensors
    for ``rule`` (None: a rule both fused kernels serve).

    ``x`` (the input) may be strided: the backends get it in a layout they
    walk (:func:`.layout.walkable`). ``others`` (threshold, state) are
    updated or read in place and must be dense already. A rule no fused
    kernel implements (``fused_signed`` None) always runs the reference
    loop.
    """
    choice = os.environ.get(KERNEL_ENV, '1')
    if choice == '0':
        return 'reference'
    rule = None if rule is None else as_rule(rule)
    tensors = (x, *others)
    device = x.device.type
    laid_out = all(dense(t) for t in others)
    if (rule is None or rule.triton_kernel) and laid_out \
            and (device == 'cuda' or choice == 'triton') \
            and device in ('cuda', 'cpu') and _triton().usable(*tensors):
        return 'triton'
    if (rule is None or rule.c_kernel) and laid_out \
            and kernel.usable(*tensors):
        return 'c'
    return 'reference'


def _fused(backend):
    return _triton() if backend == 'triton' else kernel


def _with_codes(backend, codes, theta):
    """(form, bits) for a fused kernel to write beside its output, or
    None."""
    if codes is None or backend == 'reference':
        return None
    return codes, codes.bits_at(theta)


def if_folded(x, theta, rule, constant: bool, timesteps: int,
              inplace: bool = False, codes=None, bn=None):
    """All T steps of ``rule`` from a fresh state: spike * theta,
    [T, ...].

    ``x`` is [T, ...] or, if ``constant``, one step's input [...] (the
    layers before ran once). ``inplace`` allows writing the output over
    ``x`` (not for a constant input), which a fused backend does.
    ``codes`` (:class:`.spike_codes.SpikeCodes`): a fused backend also
    writes the spikes in that form and hangs them on the output
    (:func:`.spike_codes.codes_of`); the reference loop does not.
    ``bn`` ((alpha, beta), :mod:`.deferred_bn`): the C kernel applies an
    eval BN to ``x`` first (the caller makes sure it is the one to run).
    """
    rule = as_rule(rule)
    backend = backend_for(x, theta, rule=rule)
    extra = {} if bn is None else dict(bn=_for_c(backend, bn))
    if backend == 'reference':
        return if_loop(x, theta, rule, constant, timesteps) * theta
    bound = _with_codes(backend, codes, theta)
    out, values = _fused(backend).if_folded(
        walkable(x, constant), theta, rule.fused_signed, constant,
        timesteps, neg_threshold(theta), inplace, bound, **extra)
    return out if values is None else attach(out, codes, values)


def _for_c(backend, bn):
    if backend != 'c':
        raise RuntimeError(f'a BN left to the neuron, but the {backend} '
                           'update runs: only the C kernel applies one')
    return bn


def if_stateful(v, count, x, theta, rule, constant: bool, steps: int,
                inplace: bool = False, codes=None, bn=None):
    """``steps`` steps of ``rule`` on the persistent state ``v``/``count``
    (updated in place): spike * theta, [steps, ...]. ``x``, ``codes`` and
    ``bn`` as in :func:`if_folded`."""
    rule = as_rule(rule)
    # the count lives beside ``v``
    backend = backend_for(x, v, theta, rule=rule)
    extra = {} if bn is None else dict(bn=_for_c(backend, bn))
    if backend != 'reference':
        bound = _with_codes(backend, codes, theta)
        out, values = _fused(backend).if_stateful(
            v, count, walkable(x, constant, v), theta,
            rule.fused_signed, constant, steps, neg_threshold(theta),
            inplace, bound, **extra)
        return out if values is None else attach(out, codes, values)
    out = x.new_empty((steps, *v.shape))
    for t in range(steps):
        out[t] = rule.step(v, count, x if constant else x[t], theta) * theta
    return out


# -- time folding -------------------------------------------------------------

def unfold_time(x, steps: int, batch: int):
    """[steps * batch, ...] -> [steps, batch, ...] (a view)."""
    return x.reshape(steps, batch, *x.shape[1:])


def fold_time(x):
    """[steps, batch, ...] -> [steps * batch, ...], the layout the layers
    after a neuron take."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def repeat_steps(x, steps: int):
    """One step's input [batch, ...] as ``steps`` equal steps, folded:
    [steps * batch, ...] (a copy), with a gradient back to ``x``."""
    return fold_time(x.unsqueeze(0).expand(steps, *x.shape))


# -- outputs of a path --------------------------------------------------------

def flatten_outputs(out):
    """(tensors of a nested output in order, rebuild): ``rebuild(it)`` puts
    the next tensors of the iterator ``it`` back in the same nesting, and
    keeps anything that is not a tensor as it was."""
    leaves = []

    def walk(o):
        if isinstance(o, torch.Tensor):
            leaves.append(o)
            return lambda it: next(it)
        if isinstance(o, (list, tuple)):
            parts = [walk(p) for p in o]
            return lambda it: type(o)(p(it) for p in parts)
        if isinstance(o, dict):
            parts = {k: walk(v) for k, v in o.items()}
            return lambda it: {k: p(it) for k, p in parts.items()}
        return lambda it: o
    return leaves, walk(out)


def cat_batches(outs, sizes):
    """Outputs of consecutive batch slices joined along the batch axis, or
    None when some output does not have the batch first."""
    flat = []
    for out, size in zip(outs, sizes):
        leaves, rebuild = flatten_outputs(out)
        if any(t.dim() == 0 or t.shape[0] != size for t in leaves):
            return None
        flat.append(leaves)
    if len({len(leaves) for leaves in flat}) != 1:
        return None
    joined = [torch.cat(parts) for parts in zip(*flat)]
    return rebuild(iter(joined))


# -- the average over T -------------------------------------------------------

def add_steps(total, terms):
    """``total`` plus each of ``terms`` in time order (None: start from the
    first term). One order of additions everywhere, so a run folded,
    chunked or streamed sums its steps to the same bits."""
    for term in terms:
        total = term if total is None else total + term
    return total


def divide_by_steps(total, timesteps: int):
    """A sum over T steps as its mean (T = 1: the sum itself)."""
    return total if timesteps == 1 else total / timesteps


def time_mean(terms, timesteps: int):
    """The mean over T of one value's per-step terms (time order)."""
    return divide_by_steps(add_steps(None, terms), timesteps)


class TimeAverage:
    """The mean over T of a path's nested outputs, summed pass by pass.

    :meth:`add` takes each pass's outputs and ``split``, a function giving
    a tensor's terms in time order or None when the tensor is the same at
    every step (it passed no neuron: kept as it is, not averaged).
    """

    def __init__(self, timesteps: int):
        self.timesteps = timesteps
        self.rebuild, self.sums, self.const = None, None, None

    def add(self, out, split):
        leaves, rebuild = flatten_outputs(out)
        if self.sums is None:
            self.rebuild = rebuild
            self.sums = [None] * len(leaves)
            self.const = [False] * len(leaves)
        for i, t in enumerate(leaves):
            if self.const[i]:
                continue
            terms = split(t)
            if terms is None:
                self.sums[i], self.const[i] = t, True
            else:
                self.sums[i] = add_steps(self.sums[i], terms)

    def mean(self):
        means = [s if c else divide_by_steps(s, self.timesteps)
                 for s, c in zip(self.sums, self.const)]
        return self.rebuild(iter(means))


# -- gradients and levels -----------------------------------------------------

def straight_through(value, surrogate):
    """``value`` exactly, with the gradient ``surrogate`` has: spikes have
    none, so a rate borrows its input's (or a clip of it)."""
    return value + (surrogate - surrogate.detach())


def qann_level(q, theta, timesteps: int):
    """The spike count an exact conversion gives a QANN activation ``q``:
    round(q * T / theta), ties up (the QANN level when T = 2^b - 1)."""
    return torch.floor(q * timesteps / theta + 0.5)


def spike_count(rate, theta, timesteps: int):
    """The net spike count behind a firing rate (multiples of theta / T)."""
    return torch.round(rate * timesteps / theta)
