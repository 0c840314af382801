"""Weight fake-quantizers and the layers that use them.

Fast-SNN converts activations into spike counts; weights stay analog
synapses, so quantizing them is optional (smaller models, same spikes).
Both quantizers are symmetric and per-tensor, clip to [-alpha, alpha] and
use a straight-through estimator (STE) for the rounding:

  q(w) = alpha * P(clamp(w / alpha, -1, 1))

P rounds to a uniform grid (``uniform``) or to additive powers-of-two levels
(``apot``, Li et al., ICLR 2020). Through the STE, d q / d w = 1 inside the
clip and 0 outside; d q / d alpha = (q - w) / alpha inside, sign(w) outside.
alpha is max|w| (refreshed every call) or a learnable clip initialised from
max|w| at the first call, so it follows weights loaded from a checkpoint.
"""
import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import MODELS
from .quant_relu import check_bits


def check_weight_bits(bits) -> int:
    """Signed weights need a sign bit plus at least one magnitude bit."""
    check_bits(bits)
    if bits < 2:
        raise ValueError(f'weight bits must be in 2..8 (1-bit weights are '
                         f'not supported), got {bits!r}')
    return bits


def apot_levels(bits: int, device=None, dtype=None) -> torch.Tensor:
    """Non-negative APoT magnitudes in [0, 1] for signed ``bits``-bit weights.

    The ``bits - 1`` magnitude bits are split into terms of at most 2 bits;
    term i of n takes 0 or 2^-(i + j*n); a level is a sum of one value per
    term, normalised so the largest is 1. Sums of few powers of two keep
    levels dense near zero, where most weights lie.
    """
    mag_bits = check_weight_bits(bits) - 1
    n = (mag_bits + 1) // 2
    term_bits = [2] * (mag_bits // 2) + [1] * (mag_bits % 2)
    terms = [[0.0] + [2.0 ** -(i + j * n) for j in range(2 ** k - 1)]
             for i, k in enumerate(term_bits)]
    sums = sorted({sum(c) for c in itertools.product(*terms)})
    levels = torch.tensor(sums, dtype=torch.float64)
    # normalised in float64, then made where the weights live
    return (levels / levels.max()).to(
        device=device, dtype=dtype or torch.get_default_dtype())


def _round_ste(y: torch.Tensor, project) -> torch.Tensor:
    """project(y) in the forward pass, identity gradient in the backward."""
    return y + (project(y) - y).detach()


class _WeightQuantizer(nn.Module):
    """Shared clip handling; subclasses define ``_project`` on [-1, 1]."""

    def __init__(self, bits: int = 4, learnable: bool = False):
        super().__init__()
        self.bits = check_weight_bits(bits)
        self.learnable = bool(learnable)
        if self.learnable:
            self.alpha = nn.Parameter(torch.ones(1))
            # 0 until alpha is set from real weights (kept in checkpoints).
            self.register_buffer('initialized', torch.zeros(1))

    def set_bits(self, bits: int) -> None:
        self.bits = check_weight_bits(bits)

    def _clip(self, w: torch.Tensor) -> torch.Tensor:
        if not self.learnable:
            return w.detach().abs().max().clamp_min(1e-8)
        # the python flag spares the check once alpha is set; the check
        # itself is a select on the device (no host sync, runs on meta)
        if not getattr(self, '_ready', False):
            with torch.no_grad():
                init = w.detach().abs().max().clamp_min(1e-8).to(
                    self.alpha.dtype)
                self.alpha.copy_(torch.where(self.initialized > 0,
                                             self.alpha, init))
                self.initialized.fill_(1)
            self._ready = True
        return self.alpha.abs().clamp_min(1e-8)

    def _load_from_state_dict(self, *args, **kwargs):
        self._ready = False  # a checkpoint may bring alpha, or not
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        alpha = self._clip(w)
        y = torch.clamp(w / alpha, -1, 1)
        return alpha * _round_ste(y, self._project)

    def extra_repr(self):
        return f'bits={self.bits}, learnable={self.learnable}'


@MODELS.register_module()
class UniformWeightQuantizer(_WeightQuantizer):
    """Symmetric uniform grid: ``2**(bits-1) - 1`` steps on each side of 0."""

    def _project(self, y):
        steps = 2 ** (self.bits - 1) - 1
        return torch.round(y * steps) / steps


@MODELS.register_module()
class APoTWeightQuantizer(_WeightQuantizer):
    """Additive powers-of-two grid (see :func:`apot_levels`), sign kept."""

    def __init__(self, bits: int = 4, learnable: bool = True):
        super().__init__(bits, learnable)
        self.register_buffer('levels', apot_levels(self.bits),
                             persistent=False)

    def set_bits(self, bits: int) -> None:
        super().set_bits(bits)
        self.levels = apot_levels(self.bits, self.levels.device,
                                  self.levels.dtype)

    def _project(self, y):
        lv = self.levels.to(y.dtype)
        mids = (lv[1:] + lv[:-1]) / 2
        mag = lv[torch.bucketize(y.abs(), mids)]
        return torch.sign(y) * mag


_QUANTIZERS = {'uniform': UniformWeightQuantizer, 'apot': APoTWeightQuantizer}


def build_weight_quantizer(cfg) -> nn.Module:
    """Build from ``dict(type='uniform'|'apot', bits=4, learnable=...)``."""
    if isinstance(cfg, nn.Module):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'weight quantizer config must be a dict with a '
                         f'"type", got {cfg!r}')
    cfg = dict(cfg)
    kind = cfg.pop('type')
    cls = _QUANTIZERS.get(str(kind).lower())
    if cls is None:
        raise ValueError(f'unknown weight quantizer type {kind!r}; '
                         f'expected one of {sorted(_QUANTIZERS)}')
    return cls(**cfg)


class _QuantWeightMixin:
    """Adds a weight quantizer and the baking helper to a conv/linear."""

    def _init_quant(self, weight_quant):
        self.weight_quantizer = build_weight_quantizer(
            weight_quant or dict(type='uniform', bits=4))

    def quantized_weight(self) -> torch.Tensor:
        """The fake-quantized weight the forward pass uses (to bake in)."""
        return self.weight_quantizer(self.weight)

    def _adopt(self, layer):
        """Share a trained layer's weight and bias tensors (no copy)."""
        self.weight = layer.weight
        self.bias = layer.bias
        w = layer.weight
        self.weight_quantizer.to(
            device=w.device, dtype=w.dtype if w.is_floating_point() else None)
        self.train(layer.training)
        return self


@MODELS.register_module()
class QuantConv2d(_QuantWeightMixin, nn.Conv2d):
    """``nn.Conv2d`` whose forward uses the fake-quantized weight.

    Args: those of ``nn.Conv2d``, plus ``weight_quant`` (a quantizer config,
    default ``dict(type='uniform', bits=4)``).
    """

    def __init__(self, *args, weight_quant=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(weight_quant)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, weight_quant=None):
        """A QuantConv2d with the same geometry, sharing conv's tensors."""
        w = conv.weight
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size,
                  conv.stride, conv.padding, conv.dilation, conv.groups,
                  conv.bias is not None, conv.padding_mode,
                  weight_quant=weight_quant, device=w.device, dtype=w.dtype)
        return new._adopt(conv)

    def forward(self, x):
        return self._conv_forward(x, self.quantized_weight(), self.bias)


@MODELS.register_module()
class QuantLinear(_QuantWeightMixin, nn.Linear):
    """``nn.Linear`` whose forward uses the fake-quantized weight."""

    def __init__(self, *args, weight_quant=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(weight_quant)

    @classmethod
    def from_float(cls, linear: nn.Linear, weight_quant=None):
        """A QuantLinear of the same shape, sharing linear's tensors."""
        w = linear.weight
        new = cls(linear.in_features, linear.out_features,
                  linear.bias is not None, weight_quant=weight_quant,
                  device=w.device, dtype=w.dtype)
        return new._adopt(linear)

    def forward(self, x):
        return F.linear(x, self.quantized_weight(), self.bias)
