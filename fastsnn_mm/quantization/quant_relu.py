"""b-bit quantized ReLU with a learnable clip (the QANN activation).

q(x) = alpha * round(clamp(x / alpha, 0, 1) * L) / L,  L = 2^b - 1

Rounding is half-up (floor(y + 0.5)): it is what an integrate-and-fire
neuron with membrane start theta/2 computes, so spike counts equal QANN
levels exactly, ties included. Gradients (PACT / APoT):
  d q / d x     = 1 inside [0, alpha], 0 outside (straight-through);
  d q / d alpha = (q - x) / alpha inside, 1 above alpha, 0 below zero.

Arithmetic is in float32 at least, whatever the input's dtype: under
autocast a conv hands over bfloat16 or float16, whose 8 or 11 mantissa bits
cannot hold the levels k * alpha / L exactly. The output takes the common
dtype of input and alpha (float32 under autocast, where alpha stays
float32). On CUDA the forward and backward each run as one fused Triton
kernel (``quant_relu_triton.py``, same values; ``FASTSNN_QUANT_RELU_KERNEL=0``
switches it off); elsewhere the torch expressions below.
"""
import os

import torch
from torch import nn

from ..errors import check_int
from ..registry import MODELS


def check_bits(bits) -> int:
    """Validate an activation/weight bit width (an int in 1..8)."""
    return check_int('bits', bits, 1, 8, 'Fast-SNN uses 2, 3 or 4')


class _QuantReLUFn(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, alpha, levels: int):
        out_dtype = torch.promote_types(x.dtype, alpha.dtype)
        dtype = torch.promote_types(out_dtype, torch.float32)
        a = alpha.to(dtype).abs().clamp_min(1e-8)
        y = torch.clamp(x.to(dtype) / a, 0, 1)  # no copy for a float32 x
        q = torch.floor(y * levels + 0.5) * (a / levels)
        # x as it came (bfloat16 under autocast: half the bytes); the
        # backward's arithmetic with float32 a and q promotes it as above
        ctx.save_for_backward(x, a, q)
        ctx.alpha_dtype = alpha.dtype
        return q.to(out_dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x, a, q = ctx.saved_tensors
        grad_out = grad_out.to(a.dtype)
        inside = (x >= 0) & (x <= a)
        above = x > a
        grad_x = grad_out * inside.to(grad_out.dtype)
        d_alpha = torch.where(inside, (q - x) / a,
                              above.to(grad_out.dtype))
        grad_alpha = (grad_out * d_alpha).sum().reshape(a.shape)
        return (grad_x.to(x.dtype), grad_alpha.to(ctx.alpha_dtype), None)


_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _triton_usable(x: torch.Tensor, alpha: torch.Tensor) -> bool:
    """The fused kernels serve CUDA tensors of float32 or narrower (they
    compute in float32) when Triton imports."""
    global _triton_fn
    if not x.is_cuda or x.dtype not in _KERNEL_DTYPES \
            or alpha.dtype not in _KERNEL_DTYPES \
            or os.environ.get('FASTSNN_QUANT_RELU_KERNEL', '1') == '0':
        return False
    if _triton_fn is None:
        try:
            from .quant_relu_triton import QuantReLUTritonFn
            _triton_fn = QuantReLUTritonFn
        except ImportError:  # a torch build without Triton
            _triton_fn = False
    return _triton_fn is not False


_triton_fn = None


def quant_relu(x: torch.Tensor, alpha: torch.Tensor, levels: int):
    """q(x) with its PACT gradients; fused kernels on CUDA."""
    if _triton_usable(x, alpha):
        return _triton_fn.apply(x, alpha, levels)
    return _QuantReLUFn.apply(x, alpha, levels)


@MODELS.register_module()
class QuantReLU(nn.Module):
    """ReLU quantized to ``2**bits - 1`` uniform levels in [0, alpha].

    Args:
        bits (int): activation bits, 1..8.
        alpha (float): initial clip value (learnable, one per layer).
        inplace (bool): as ``nn.ReLU(inplace=True)``, the author's word
            that nothing else reads this layer's input after it. The QANN
            ignores it (its gradient needs the input); the SNN neuron that
            replaces it then writes its spikes over its input (one tensor
            less per step). ``ConvModule`` passes True, as for ReLU.
    """

    def __init__(self, bits: int = 3, alpha: float = 4.0,
                 inplace: bool = False):
        super().__init__()
        self.bits = check_bits(bits)
        self.inplace = bool(inplace)
        if not alpha > 0:
            raise ValueError(
                f'QuantReLU alpha must be positive, got {alpha!r}')
        self.alpha = nn.Parameter(torch.tensor([float(alpha)]))

    @property
    def levels(self) -> int:
        return 2 ** self.bits - 1

    def set_bits(self, bits: int) -> None:
        self.bits = check_bits(bits)

    def forward(self, x):
        return quant_relu(x, self.alpha, self.levels)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # an SNN checkpoint stores the same clip as its neurons' threshold
        theta = state_dict.pop(prefix + 'theta', None)
        if theta is not None and prefix + 'alpha' not in state_dict:
            state_dict[prefix + 'alpha'] = theta.reshape(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self):
        alpha = 'meta' if self.alpha.is_meta else f'{self.alpha.item():.4g}'
        return f'bits={self.bits}, alpha={alpha}'
