"""QuantReLU forward and backward as single fused Triton kernels (CUDA).

The pure-torch QuantReLU makes about six elementwise passes over the
activation forward (divide, clamp, scale, round, rescale) and as many
backward, each reading and writing the whole tensor: on a GPU, where
elementwise work is bound by memory bandwidth, the QAT train step took
1.66x the ReLU step before this kernel (QResNet-18, H200, 32 px, batch
128; `benchmarks/bench_qat_step.py --device cuda` measures it). Here the
forward reads x once and writes q once; the backward reads x and the incoming
gradient once, writes the input gradient once, and reduces the clip's
gradient to one partial sum per block. q is recomputed in the backward from
x and alpha instead of being saved, so the layer keeps one tensor, not two.

Same values as the torch path on the same device, element by element:
every operation is the torch path's, in the same order and with the same
roundings (IEEE division ``div_rn``, no fused multiply-add: the kernels run
with ``enable_fp_fusion=False``; ``alpha / levels`` as torch's CUDA kernel
computes a division by a Python number: times the float32 reciprocal). The
input gradient is bit-identical; the clip's gradient is a sum over the
whole tensor, taken in another order than torch's, so it agrees to float32
rounding. Arithmetic is in float32 whatever the input's dtype (bfloat16 or
float16 under autocast), so the levels ``k * alpha / (2^b - 1)`` stay exact.

Every launch goes to x's own GPU, not the current one
(:func:`fastsnn_mm.utils.devices.on_device_of`), so a model on ``cuda:1``
runs there.

Tested bit for bit against the torch path on CPU tensors through Triton's
interpreter (``TRITON_INTERPRET=1``); tests marked ``cuda`` check the same
on a GPU where one is present.
"""
import numpy as np
import torch
import triton
import triton.language as tl

from ..utils.devices import on_device_of

#: elements per program; 4 warps of 32 threads, 8 elements a thread
BLOCK = 1024


@triton.jit
def _div_rn(a, b):
    # IEEE-rounded division, as torch's elementwise '/' (Triton's plain '/'
    # on float32 is an approximate division)
    return tl.math.div_rn(a, b)


@triton.jit
def _clip_and_step(alpha_ptr, levels, inv_levels,
                   STEP_BY_RECIPROCAL: tl.constexpr):
    a = tl.abs(tl.load(alpha_ptr).to(tl.float32))
    # clamp_min(1e-8) as torch's: a NaN alpha stays NaN (tl.maximum would
    # return 1e-8 and quantize as if alpha were tiny)
    a = tl.where(a < 1e-8, 1e-8, a)
    if STEP_BY_RECIPROCAL:
        step = a * inv_levels
    else:
        step = _div_rn(a, levels)
    return a, step


@triton.jit
def _levels_of(xf, a, step, levels):
    y = _div_rn(xf, a)
    y = tl.where(y < 0.0, 0.0, y)  # NaN stays NaN, as torch.clamp
    y = tl.where(y > 1.0, 1.0, y)
    k = tl.floor(y * levels + 0.5)
    return k * step


@triton.jit
def _quant_relu_fwd(x_ptr, q_ptr, alpha_ptr, n, levels, inv_levels,
                    STEP_BY_RECIPROCAL: tl.constexpr, BLOCK: tl.constexpr):
    start = tl.program_id(0).to(tl.int64) * BLOCK
    offs = start + tl.arange(0, BLOCK)
    mask = offs < n
    a, step = _clip_and_step(alpha_ptr, levels, inv_levels,
                             STEP_BY_RECIPROCAL)
    xf = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    q = _levels_of(xf, a, step, levels)
    tl.store(q_ptr + offs, q.to(q_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _quant_relu_bwd(x_ptr, g_ptr, gx_ptr, partial_ptr, alpha_ptr, n, levels,
                    inv_levels, STEP_BY_RECIPROCAL: tl.constexpr,
                    BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a, step = _clip_and_step(alpha_ptr, levels, inv_levels,
                             STEP_BY_RECIPROCAL)
    xf = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    q = _levels_of(xf, a, step, levels)
    inside = (xf >= 0.0) & (xf <= a)
    above = xf > a
    # straight-through inside [0, alpha]; g * 0.0 keeps torch's signed zeros
    gx = g * tl.where(inside, 1.0, 0.0)
    tl.store(gx_ptr + offs, gx.to(gx_ptr.dtype.element_ty), mask=mask)
    d_alpha = tl.where(inside, _div_rn(q - xf, a), tl.where(above, 1.0, 0.0))
    contrib = tl.where(mask, g * d_alpha, 0.0)
    tl.store(partial_ptr + pid, tl.sum(contrib, axis=0))


def _dense(t: torch.Tensor) -> bool:
    """Elements laid out densely in memory in some order the kernels can
    walk flat (contiguous or channels-last), so no copy is needed."""
    return t.is_contiguous() or (
        t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


def _scalars(levels: int, device: torch.device):
    # torch's CUDA kernel divides by a Python number as a product with its
    # float32 reciprocal; the CPU one divides (see module docstring)
    inv = float(np.float32(1.0) / np.float32(levels))
    return float(levels), inv, device.type == 'cuda'


def _grid(n):
    return (triton.cdiv(n, BLOCK), )


def quant_relu_forward(x: torch.Tensor, alpha: torch.Tensor, levels: int,
                       out_dtype: torch.dtype = None) -> torch.Tensor:
    """q(x) in one pass; ``out_dtype`` defaults to x's and alpha's common
    dtype (float32 for a bfloat16 x under autocast)."""
    if not _dense(x):
        x = x.contiguous()
    if out_dtype is None:
        out_dtype = torch.promote_types(x.dtype, alpha.dtype)
    q = torch.empty_like(x, dtype=out_dtype)
    n = x.numel()
    if n:
        lv, inv, recip = _scalars(levels, x.device)
        with on_device_of(x):  # x's GPU, not the current one
            _quant_relu_fwd[_grid(n)](x, q, alpha, n, lv, inv,
                                      STEP_BY_RECIPROCAL=recip, BLOCK=BLOCK,
                                      num_warps=4, enable_fp_fusion=False)
    return q


def quant_relu_backward(x: torch.Tensor, grad_out: torch.Tensor,
                        alpha: torch.Tensor, levels: int):
    """(grad_x in x's dtype, grad_alpha shaped as alpha) in one pass plus a
    sum over one float32 partial per block."""
    if not _dense(x):
        x = x.contiguous()
    if grad_out.stride() != x.stride():
        grad_out = torch.empty_like(x, dtype=grad_out.dtype).copy_(grad_out)
    grad_x = torch.empty_like(x)
    n = x.numel()
    partial = torch.zeros(_grid(n)[0], dtype=torch.float32, device=x.device)
    if n:
        lv, inv, recip = _scalars(levels, x.device)
        with on_device_of(x):
            _quant_relu_bwd[_grid(n)](x, grad_out, grad_x, partial, alpha, n,
                                      lv, inv, STEP_BY_RECIPROCAL=recip,
                                      BLOCK=BLOCK, num_warps=4,
                                      enable_fp_fusion=False)
    grad_alpha = partial.sum().to(alpha.dtype).reshape(alpha.shape)
    return grad_x, grad_alpha


class QuantReLUTritonFn(torch.autograd.Function):
    """Autograd of the fused kernels; saves only x (and alpha)."""

    @staticmethod
    def forward(ctx, x, alpha, levels: int):
        ctx.save_for_backward(x, alpha)
        ctx.levels = levels
        return quant_relu_forward(x, alpha, levels)

    @staticmethod
    def backward(ctx, grad_out):
        x, alpha = ctx.saved_tensors
        grad_x, grad_alpha = quant_relu_backward(x, grad_out, alpha,
                                                 ctx.levels)
        return grad_x, grad_alpha, None
