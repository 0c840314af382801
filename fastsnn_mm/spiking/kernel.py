"""Fast path for the IF update: the compiled T-step kernel (`_if_kernel.c`).

The reference loop in ``functional.py`` stays the definition of the neuron and
the fallback; this path gives bit-identical outputs (tested) and is used for
float32 CPU tensors when the extension was built (``pip install -e .`` builds
it). ``FASTSNN_IF_KERNEL=0`` switches it off, e.g. to time the reference.
"""
import os

import torch

try:
    from . import _if_kernel
except ImportError:  # not built (e.g. source tree without a compiler)
    _if_kernel = None

_warned = False


def available() -> bool:
    """True when the compiled kernel is built and not switched off."""
    return _if_kernel is not None and \
        os.environ.get('FASTSNN_IF_KERNEL', '1') != '0'


def usable(*tensors) -> bool:
    """The kernel takes float32 CPU tensors without autograd (laid out
    contiguously: :func:`functional.if_folded` sees to that)."""
    global _warned
    if _if_kernel is None and not _warned:
        _warned = True
        from mmengine.logging import print_log
        print_log('fastsnn_mm: the compiled IF kernel is not built; neurons '
                  'use the slower reference loop (reinstall with '
                  '`pip install -e .` to build it)', level=30)
    if not available():
        return False
    grad = torch.is_grad_enabled()
    return all(t.dtype == torch.float32 and t.device.type == 'cpu'
               and not (grad and t.requires_grad) for t in tensors)


def _thresholds(theta: torch.Tensor, neg_theta: torch.Tensor):
    # the kernel compares with the reference's own threshold tensors
    return float(theta.item()), float(neg_theta.item())


def _output(x, steps, shape, constant, inplace):
    if inplace and not constant:
        return x  # written over the input, element by element
    return x.new_empty((steps, *shape))


def if_folded(x, theta, signed: bool, constant: bool, timesteps: int,
              neg_theta, inplace: bool = False):
    """All T steps at once from a fresh state. ``x`` is [T, ...] or, if
    ``constant``, one step's input [...], contiguous; ``neg_theta`` the
    signed rule's negative threshold (:func:`functional.neg_threshold`).
    Returns spike * theta, [T, ...] (``x`` itself, overwritten, when
    ``inplace`` and not ``constant``)."""
    shape = x.shape if constant else x.shape[1:]
    n = x.numel() if constant else x[0].numel()
    out = _output(x, timesteps, shape, constant, inplace)
    th, neg = _thresholds(theta, neg_theta)
    _if_kernel.if_run(x.data_ptr(), out.data_ptr(), 0, 0, 4, n,
                      0 if constant else n, timesteps, th, neg, signed,
                      torch.get_num_threads())
    return out


def if_stateful(v, count, x, theta, signed: bool, constant: bool,
                steps: int, neg_theta, inplace: bool = False):
    """``steps`` steps on persistent state ``v``/``count`` (updated in
    place). ``x`` is [steps, ...] or, if ``constant``, one step's input.
    Returns spike * theta, [steps, ...] (see :func:`if_folded`)."""
    n = v.numel()
    constant = constant and steps > 1  # one step: its input is the step's
    out = _output(x, steps, v.shape, constant, inplace)
    if out is x:
        out = x.view(steps, *v.shape)
    th, neg = _thresholds(theta, neg_theta)
    cptr, cbytes = (count.data_ptr(), count.element_size()) if signed \
        else (0, 4)
    _if_kernel.if_run(x.data_ptr(), out.data_ptr(), v.data_ptr(), cptr,
                      cbytes, n, 0 if constant else n, steps, th, neg, signed,
                      torch.get_num_threads())
    return out
