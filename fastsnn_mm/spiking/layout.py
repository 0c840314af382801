"""Memory layouts the fused IF kernels walk.

Both kernels (C on the CPU, Triton on CUDA) treat a step of the input, the
output, the codes and the state as one flat array: element k of step t at
t * n + k. So any dense layout works, contiguous or channels-last (what
oneDNN's int8 convolution and a channels-last model hand over), as long as
all of them share it; no copy back to contiguous and none afterwards.
"""
import torch


def dense(t: torch.Tensor) -> bool:
    """Whether ``t``'s elements fill its memory without gaps in one of the
    layouts the layers hand over (contiguous, or channels-last for a 4-d
    tensor)."""
    return t.is_contiguous() or (
        t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


def step_major(x: torch.Tensor) -> bool:
    """Whether [T, ...] ``x`` is T dense steps one after another in
    memory (a folded [T*B, ...] tensor unfolded, in either layout)."""
    return x.dim() > 1 and dense(x[0]) and \
        (x.shape[0] == 1 or x.stride(0) == x[0].numel())


def steps_like(like: torch.Tensor, steps: int, dtype=None):
    """An uninitialised [steps, *like.shape] tensor laid out as ``like``
    (one step) is, step after step."""
    return torch.empty_strided((steps, *like.shape),
                               (like.numel(), *like.stride()),
                               dtype=dtype or like.dtype, device=like.device)


def walkable(x, constant: bool, state=None):
    """``x`` (one step's input if ``constant``, else [steps, ...]) as a
    kernel walks it: each step dense, one after another, and with
    ``state`` (updated in place) each step laid out as the state is; a
    copy only where that does not hold already."""
    per_step = constant or (state is not None and x.dim() == state.dim())
    if state is None:
        fits = dense(x) if per_step else step_major(x)
        return x if fits else x.contiguous()
    step = x if per_step else x[0]
    if dense(step) and step.stride() == state.stride() and (
            per_step or step_major(x)):
        return x
    if per_step:
        return steps_like(state, 1)[0].copy_(x)
    return steps_like(state, x.shape[0]).copy_(x)


def output_for(x, steps: int, like, constant: bool, inplace: bool):
    """Where a kernel writes its [steps, *like.shape] output: over ``x``
    itself when ``inplace`` (each element is read before it is written),
    else a new tensor laid out as ``like`` (one step) is."""
    if inplace and not constant:
        return x.view(steps, *like.shape)
    return steps_like(like, steps)


def channels_last_for_convs(x: torch.Tensor, constant: bool):
    """A neuron's input as its spike-reading convs want the spikes laid
    out: channels-last, which oneDNN's int8 and bfloat16 convolutions
    answer in; given contiguous spikes they reorder them at every call,
    and the residual add after mixes layouts (slower than either). Only
    a ``constant`` input (one step, from layers that ran once: the stem
    before the first neuron) is copied, 1/T of the spikes it makes; any
    other input stays as it came."""
    if constant and x.dim() == 4 and x.is_contiguous() and \
            not x.is_contiguous(memory_format=torch.channels_last):
        return x.contiguous(memory_format=torch.channels_last)
    return x
