"""Fast path for the IF update: the compiled T-step kernel (`_if_kernel.c`).

The reference loop in ``functional.py`` stays the definition of the neuron and
the fallback; this path gives bit-identical outputs (tested) and is used for
float32 CPU tensors when the extension was built (``pip install -e .`` builds
it). ``FASTSNN_IF_KERNEL=0`` switches it off, e.g. to time the reference.
"""
import os

import torch

from .layout import output_for, steps_like

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
    densely: :func:`functional.if_folded` sees to that)."""
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


def _code_args(codes, like, steps):
    """(codes tensor or None, the kernel's five code arguments) for
    ``codes``: None, or (:class:`.spike_codes.SpikeCodes`, its three
    codes' bits at this threshold)."""
    if codes is None:
        return None, (0, 1, 0, 0, 0)
    form, bits = codes
    values = steps_like(like, steps, form.dtype)
    return values, (values.data_ptr(), values.element_size(), *bits)


def _bn_args(bn, like):
    """The kernel's six BN arguments: (alpha, beta, channels, inner, fma,
    residual) for ``bn`` ((alpha, beta, fma, residual): float32 [C] CPU
    tensors applied as x * alpha + beta, with ``fma`` in one rounding,
    then + residual (None, or laid out as the input), before the update),
    walked in ``like``'s layout (one step, [B, C, H, W], contiguous or
    channels-last), or none."""
    if bn is None:
        return (0, 0, 1, 1, False, 0)
    alpha, beta, fma, residual = bn
    channels, inner = channel_walk(like)
    return (alpha.data_ptr(), beta.data_ptr(), channels, inner, fma,
            0 if residual is None else residual.data_ptr())


def channel_walk(like):
    """(channels, inner) of a dense [B, C, H, W] tensor: element k's
    channel is (k // inner) % channels (inner 1: channels-last)."""
    channels = like.shape[1]
    inner = 1 if like.stride(1) == 1 and channels > 1 \
        else like.shape[2] * like.shape[3]
    return channels, inner


def bn_factors(bn, fma: bool):
    """(alpha, beta) float32 [C] of an eval BN as ATen forms them (with
    ``fma``: beta in one rounding), by the compiled kernel."""
    f32 = dict(dtype=torch.float32)
    mean, var = bn.running_mean.contiguous(), bn.running_var.contiguous()
    alpha, beta = torch.empty_like(mean, **f32), torch.empty_like(mean, **f32)
    w, b = (None if t is None else t.detach().contiguous()
            for t in (bn.weight, bn.bias))
    _if_kernel.bn_factors(mean.data_ptr(), var.data_ptr(),
                          0 if w is None else w.data_ptr(),
                          0 if b is None else b.data_ptr(), float(bn.eps),
                          alpha.data_ptr(), beta.data_ptr(), mean.numel(),
                          fma)
    return alpha, beta


def bn_apply(x, alpha, beta, fma: bool):
    """x * alpha + beta per channel on a dense 4-d float32 ``x``, as the
    kernel's BN mode computes it (a new tensor in ``x``'s layout)."""
    out = torch.empty_like(x)
    channels, inner = channel_walk(x)
    _if_kernel.bn_apply(x.data_ptr(), out.data_ptr(), x.numel(),
                        alpha.data_ptr(), beta.data_ptr(), channels, inner,
                        fma)
    return out


def if_folded(x, theta, signed: bool, constant: bool, timesteps: int,
              neg_theta, inplace: bool = False, codes=None, bn=None):
    """All T steps at once from a fresh state. ``x`` is [T, ...] or, if
    ``constant``, one step's input [...], laid out densely step by step
    (:func:`.layout.walkable`; :func:`functional.if_folded` sees to
    that); ``neg_theta`` the signed rule's negative threshold
    (:func:`functional.neg_threshold`). Returns spike * theta, [T, ...],
    in ``x``'s layout (``x`` itself, overwritten, when ``inplace`` and not
    ``constant``), and, for ``codes`` ((form, bits): :func:`_code_args`),
    the spikes in that form written in the same pass (else None). ``bn``
    (:func:`_bn_args`): an eval BN the update applies to ``x`` first."""
    like = x if constant else x[0]
    n = like.numel()
    out = output_for(x, timesteps, like, constant, inplace)
    th, neg = _thresholds(theta, neg_theta)
    values, code_args = _code_args(codes, like, timesteps)
    _if_kernel.if_run(x.data_ptr(), out.data_ptr(), 0, 0, 4, n,
                      0 if constant else n, timesteps, th, neg, signed,
                      torch.get_num_threads(), *code_args,
                      *_bn_args(bn, like))
    return out, values


def if_stateful(v, count, x, theta, signed: bool, constant: bool,
                steps: int, neg_theta, inplace: bool = False, codes=None,
                bn=None):
    """``steps`` steps on persistent state ``v``/``count`` (updated in
    place; laid out as each step of ``x``). ``x`` is [steps, ...] or, if
    ``constant``, one step's input. Returns spike * theta, [steps, ...],
    and the codes (see :func:`if_folded`)."""
    n = v.numel()
    constant = constant and steps > 1  # one step: its input is the step's
    out = output_for(x, steps, v, constant, inplace)
    th, neg = _thresholds(theta, neg_theta)
    cptr, cbytes = (count.data_ptr(), count.element_size()) if signed \
        else (0, 4)
    values, code_args = _code_args(codes, v, steps)
    _if_kernel.if_run(x.data_ptr(), out.data_ptr(), v.data_ptr(), cptr,
                      cbytes, n, 0 if constant else n, steps, th, neg, signed,
                      torch.get_num_threads(), *code_args, *_bn_args(bn, v))
    return out, values
