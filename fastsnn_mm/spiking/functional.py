"""The integrate-and-fire update as pure functions, and its dispatch.

These pieces hold no module state: a neuron (``neurons.py``) hands them its
threshold and the steps the runner presented, and keeps nothing else.

* :func:`new_state`, :func:`if_step`, :func:`if_loop`: the reference
  update, the definition every fused kernel is tested against bit for bit.
* :func:`if_folded`, :func:`if_stateful`: the same update through the
  fastest backend for the tensors at hand (:func:`backend_for`): the C
  kernel for float32 CPU tensors, the Triton kernel for CUDA tensors, the
  reference loop for anything else (other dtypes on the CPU, ``meta``,
  tensors that need autograd).

Bits: a fused kernel repeats the reference's float operations in the same
order on the same device, so it gives the reference's bits there. Across
devices the layers around the neurons may round differently (on CUDA, cuDNN
picks algorithms per batch shape and TF32 is on for convolutions), so
"bit-identical" holds per device and per batch shape.
"""
import os

import torch

from . import kernel

#: A membrane this far below zero counts as negative (absorbs float noise).
NEG_EPS = 1e-6

#: ``FASTSNN_IF_KERNEL``: unset or '1' picks a backend per tensor; '0' runs
#: the reference loop everywhere (to time it); 'triton' prefers the Triton
#: kernel wherever it can run, which includes CPU tensors under Triton's
#: interpreter (``TRITON_INTERPRET=1``, for tests without a GPU).
KERNEL_ENV = 'FASTSNN_IF_KERNEL'


def count_dtype(timesteps: int):
    """A neuron fires at most once a step, so |count| <= T: int8 holds it for
    T <= 127 at a quarter of float's memory, which matters in streaming
    mode, where every neuron keeps its state for the whole run."""
    return torch.int8 if timesteps <= 127 else torch.int32


def neg_threshold(theta):
    """The signed rule's negative threshold, computed one way everywhere
    (the kernels take this tensor rather than recompute it)."""
    return -NEG_EPS * theta


def new_state(like, theta, signed: bool, timesteps: int):
    """Membrane at theta/2 and, for the signed rule, a net spike count, on
    ``like``'s device and in its dtype."""
    v = torch.full(like.shape, 0.5, dtype=like.dtype,
                   device=like.device).mul_(theta)
    count = torch.zeros(like.shape, dtype=count_dtype(timesteps),
                        device=like.device) if signed else None
    return v, count


def if_step(v, count, x, theta, signed: bool):
    """One in-place IF update; returns the signed spike tensor (+1/0/-1)."""
    v.add_(x)
    pos = v >= theta
    v.sub_(pos * theta)
    if not signed:
        return pos.to(v.dtype)
    # only the signed rule needs the net count
    neg = (v < neg_threshold(theta)) & (count > 0)
    v.add_(neg * theta)
    count.add_(pos).add_(neg, alpha=-1)
    return pos.to(v.dtype) - neg.to(v.dtype)


def if_loop(x_steps, theta, signed: bool, constant: bool, timesteps: int):
    """Reference T-step loop. ``x_steps`` is [T, ...] or, if ``constant``,
    one step's input [...] repeated T times. Returns spikes [T, ...]."""
    shape = x_steps.shape if constant else x_steps.shape[1:]
    v, count = new_state(x_steps.new_empty(shape), theta, signed, timesteps)
    out = x_steps.new_empty((timesteps, *shape))
    for t in range(timesteps):
        out[t] = if_step(v, count, x_steps if constant else x_steps[t],
                         theta, signed)
    return out


def _triton():
    # imported on first use: CPU runs never pay for importing Triton
    from . import triton_if
    return triton_if


def backend_for(*tensors) -> str:
    """'c', 'triton' or 'reference': which update runs on these tensors."""
    choice = os.environ.get(KERNEL_ENV, '1')
    if choice == '0':
        return 'reference'
    device = tensors[0].device.type
    if (device == 'cuda' or choice == 'triton') \
            and device in ('cuda', 'cpu') and _triton().usable(*tensors):
        return 'triton'
    if kernel.usable(*tensors):
        return 'c'
    return 'reference'


def if_folded(x, theta, signed: bool, constant: bool, timesteps: int,
              in_place: bool = False):
    """All T steps from a fresh state: spike * theta, [T, ...].

    ``x`` is [T, ...] or, if ``constant``, one step's input [...] (the
    layers before ran once). ``in_place`` allows writing the output over
    ``x`` (not for a constant input), which a fused backend does.
    """
    backend = backend_for(x, theta)
    if backend == 'triton':
        return _triton().if_folded(x, theta, signed, constant, timesteps,
                                   NEG_EPS, in_place)
    if backend == 'c':
        return kernel.if_folded(x, theta, signed, constant, timesteps,
                                NEG_EPS, in_place)
    return if_loop(x, theta, signed, constant, timesteps) * theta


def if_stateful(v, count, x, theta, signed: bool, constant: bool,
                steps: int, in_place: bool = False):
    """``steps`` steps on the persistent state ``v``/``count`` (updated in
    place): spike * theta, [steps, ...]. ``x`` as in :func:`if_folded`."""
    backend = backend_for(x, v, theta)  # the count lives beside ``v``
    if backend == 'triton':
        return _triton().if_stateful(v, count, x, theta, signed, constant,
                                     steps, NEG_EPS, in_place)
    if backend == 'c':
        return kernel.if_stateful(v, count, x, theta, signed, constant,
                                  steps, NEG_EPS, in_place)
    out = x.new_empty((steps, *v.shape))
    for t in range(steps):
        out[t] = if_step(v, count, x if constant else x[t], theta,
                         signed) * theta
    return out
