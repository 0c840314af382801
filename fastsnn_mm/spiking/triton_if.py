"""Fused IF update over T steps for CUDA tensors, in Triton.

Why: on a GPU the update is bound by memory bandwidth. Written as torch ops,
every step makes about ten passes over the activation. Here each program
keeps a block of membranes (and, signed, net counts) in registers for all
the steps it is handed: one read of each step's input, one write of its
output, and the state read and written once per call (streaming, chunks).
The arithmetic is :func:`functional.if_step`'s, in the same order and the
same dtype, so the outputs are the reference's bits on the same device.

Triton ships with torch's CUDA wheels: no build step and no CUDA toolkit.
Under Triton's interpreter (``TRITON_INTERPRET=1``) the same kernel runs on
CPU tensors, which is how it is tested on machines without a GPU.
"""
import os

import torch

from ..utils.devices import on_device_of
from .layout import output_for, steps_like

try:
    import triton
    import triton.language as tl
    constexpr, jit = tl.constexpr, triton.jit
except ImportError:  # a CPU-only torch wheel does not bring Triton
    triton = tl = None
    # the kernel below is then defined but never compiled
    constexpr, jit = 'constexpr', (lambda fn: fn)

#: dtypes the kernel takes (the reference's dtype is kept throughout)
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

#: elements per program; 8 float32 per thread at 4 warps (128-bit accesses)
BLOCK = 1024


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter."""
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


def available() -> bool:
    return triton is not None


def usable(*tensors) -> bool:
    """Tensors of one supported dtype, without autograd, on CUDA (or on the
    CPU under the interpreter); laid out densely, which
    :func:`functional.if_folded` sees to."""
    if triton is None:
        return False
    device = 'cpu' if interpreting() else 'cuda'
    grad = torch.is_grad_enabled()
    dtype = tensors[0].dtype
    return dtype in DTYPES and all(
        t.dtype == dtype and t.device.type == device
        and not (grad and t.requires_grad) for t in tensors)


@jit
def _widen(a, ACC: constexpr, BF16: constexpr):
    """A loaded tensor in the arithmetic dtype (bfloat16 by its bits:
    exact on every backend, Triton's interpreter included)."""
    if BF16:
        bits = a.to(tl.uint16, bitcast=True).to(tl.uint32) << 16
        wide = bits.to(tl.float32, bitcast=True)
    else:
        wide = a.to(ACC)
    return wide


@jit
def _narrow(a, dtype: constexpr, BF16: constexpr):
    """A value :func:`_rounded` already made representable, in ``dtype``."""
    if BF16:
        bits = (a.to(tl.uint32, bitcast=True) >> 16).to(tl.uint16)
        narrow = bits.to(tl.bfloat16, bitcast=True)
    else:
        narrow = a.to(dtype)
    return narrow


@jit
def _rounded(a, dtype: constexpr, BF16: constexpr):
    """``a`` rounded to ``dtype`` (to nearest, ties to even), kept wide."""
    if BF16:
        bits = a.to(tl.uint32, bitcast=True)
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
        rounded = bits.to(tl.float32, bitcast=True)
    else:
        rounded = a.to(dtype).to(a.dtype)
    return rounded


@jit
def if_steps_kernel(x_ptr, out_ptr, v_ptr, count_ptr, theta_ptr, neg_ptr,
                    codes_ptr, code_pos, code_zero, code_neg,
                    n, x_step, steps, SIGNED: constexpr, STATEFUL: constexpr,
                    CODES: constexpr, ACC: constexpr, BF16: constexpr,
                    BLOCK: constexpr):
    """``steps`` IF steps for BLOCK elements of n. x: step t at
    x_ptr + t * x_step (x_step 0: the same input every step); out: [steps,
    n], may be x itself. Stateful: v/count carry in and out; else fresh
    (V = theta / 2, count 0). CODES: also store, per element and step,
    code_pos / code_zero / code_neg for spike +1 / 0 / -1 at codes_ptr
    ([steps, n], integers of the reader dtype's width:
    :mod:`.spike_codes`).

    Arithmetic runs in ACC (float32, or float64 for float64 tensors) and
    every result is rounded to the tensor's dtype at once, as torch's own
    kernels do for half and bfloat16 (one op in float32 then one rounding
    is the correctly rounded half/bfloat16 op): the membrane holds the
    reference's value after every operation."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    dtype = x_ptr.dtype.element_ty
    theta = _widen(tl.load(theta_ptr), ACC, BF16)
    neg_thr = _widen(tl.load(neg_ptr), ACC, BF16)  # -NEG_EPS * theta
    zero = tl.zeros([BLOCK], dtype=ACC)
    if STATEFUL:
        v = _widen(tl.load(v_ptr + offs, mask=mask), ACC, BF16)
        if SIGNED:
            count = tl.load(count_ptr + offs, mask=mask).to(tl.int32)
        else:
            count = tl.zeros([BLOCK], dtype=tl.int32)
    else:
        # theta / 2: exact in ACC, then one rounding, as the reference's
        v = _rounded(zero + theta * 0.5, dtype, BF16)
        count = tl.zeros([BLOCK], dtype=tl.int32)
    x_at = x_ptr + offs
    out_at = out_ptr + offs
    codes_at = codes_ptr + offs
    for _ in range(steps):
        x = _widen(tl.load(x_at, mask=mask), ACC, BF16)
        v = _rounded(v + x, dtype, BF16)
        pos = v >= theta
        # v - pos * theta, not a select of v: the same signed zeros
        v = _rounded(v - tl.where(pos, theta, zero), dtype, BF16)
        if SIGNED:
            neg = (v < neg_thr) & (count > 0)
            v = _rounded(v + tl.where(neg, theta, zero), dtype, BF16)
            count = count + pos.to(tl.int32) - neg.to(tl.int32)
            # (pos - neg) * theta: theta, -theta or +0
            spike = tl.where(pos, theta, tl.where(neg, zero - theta, zero))
        else:
            neg = pos & False
            spike = tl.where(pos, theta, zero)
        tl.store(out_at, _narrow(spike, dtype, BF16), mask=mask)
        if CODES:
            code = tl.where(pos, code_pos, tl.where(neg, code_neg, code_zero))
            tl.store(codes_at, code.to(codes_ptr.dtype.element_ty),
                     mask=mask)
            codes_at += n
        x_at += x_step
        out_at += n
    if STATEFUL:
        tl.store(v_ptr + offs, _narrow(v, dtype, BF16), mask=mask)
        if SIGNED:
            tl.store(count_ptr + offs,
                     count.to(count_ptr.dtype.element_ty), mask=mask)


def _signed_bits(bits, width):
    """An unsigned code of ``width`` bytes as the signed integer of that
    width with the same bits (what a store to an int16 / int32 takes)."""
    if width == 1:
        return bits
    top = 1 << (8 * width - 1)
    return bits - 2 * top if bits >= top else bits


def _launch(x, out, v, count, theta, neg_theta, n, x_step, steps, signed,
            codes=None, values=None):
    """One launch on ``x``'s own GPU (not the current one), compiled without
    FP contraction: no fused multiply-add may change a rounding the
    reference makes (today only ``theta * 0.5`` would fuse, exactly; the
    next edit need not be so lucky)."""
    theta, neg_theta = theta.reshape(1), neg_theta.reshape(1)
    if n == 0:
        return
    grid = (triton.cdiv(n, BLOCK), )
    code_bits = (0, 0, 0)
    if codes is not None:  # (form, its three codes' bits)
        width = values.element_size()
        code_bits = [_signed_bits(b, width) for b in codes[1]]
        values = values.view({1: torch.uint8, 2: torch.int16,
                              4: torch.int32}[width])
    with on_device_of(x):
        if_steps_kernel[grid](
            x, out, x if v is None else v,
            count if count is not None else theta, theta, neg_theta,
            x if values is None else values, *code_bits, n,
            x_step, steps, SIGNED=bool(signed), STATEFUL=v is not None,
            CODES=codes is not None,
            ACC=tl.float64 if x.dtype == torch.float64 else tl.float32,
            BF16=x.dtype == torch.bfloat16, BLOCK=BLOCK,
            enable_fp_fusion=False)


def _codes(codes, like, steps):
    return None if codes is None else steps_like(like, steps,
                                                 codes[0].dtype)


def if_folded(x, theta, signed: bool, constant: bool, timesteps: int,
              neg_theta, inplace: bool = False, codes=None):
    """All T steps from a fresh state, and the codes (see
    ``kernel.if_folded``; the same layouts)."""
    like = x if constant else x[0]
    n = like.numel()
    out = output_for(x, timesteps, like, constant, inplace)
    values = _codes(codes, like, timesteps)
    _launch(x, out, None, None, theta, neg_theta, n, 0 if constant else n,
            timesteps, signed, codes, values)
    return out, values


def if_stateful(v, count, x, theta, signed: bool, constant: bool,
                steps: int, neg_theta, inplace: bool = False, codes=None):
    """``steps`` steps on persistent ``v``/``count`` (updated in place),
    and the codes; ``x`` laid out as the state, step by step."""
    n = v.numel()
    constant = constant and steps > 1  # one step: its input is the step's
    out = output_for(x, steps, v, constant, inplace)
    values = _codes(codes, v, steps)
    _launch(x, out, v, count if signed else None, theta, neg_theta, n,
            0 if constant else n, steps, signed, codes, values)
    return out, values
