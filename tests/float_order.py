"""Float order in the tests: when two runs must give the same bits, and
what they must agree to otherwise.

Conv and GEMM libraries (MKL, oneDNN, cuDNN) pick a summation order per
CPU, per instruction set and per batch shape. Two plans of one SNN
(folded, chunked, streaming, batch slices) present the layers different
batch shapes, so on float values they may sum a conv's terms in another
order, round differently, and a membrane within an ulp of its threshold
fires in one plan and not in the other. The neuron updates, the residual
adds and the time average are elementwise and run in the same (time)
order in every plan: only the sums inside convs, linears and pools can
differ.

Exact (``torch.equal`` is the right check): when every term and every
partial sum of those sums is exactly representable, any order gives the
same bits. :func:`make_dyadic` and :func:`dyadic_input` build such nets
and inputs; :func:`assert_sums_exact` proves it for a given run, sum by
sum.

Not exact (random float weights): :func:`assert_close_up_to_ties` holds
outputs to a float bound derived from the dtype's eps and the fan-in and
counts to equality except at threshold ties, whose share is bounded.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from fastsnn_mm import QuantReLU

#: thresholds (QuantReLU alphas / neuron thetas) make_dyadic draws from
THETAS = (0.5, 1.0, 1.5, 2.0)

#: mantissa bits (with the implicit one) a sum is exact within. Half types
#: accumulate conv and GEMM sums in float32 on the CPU (oneDNN, ATen's
#: opmath) and round once at the end, which is the same in every order
#: when the float32 sum is exact.
MANTISSA = {torch.float64: 53, torch.float32: 24, torch.bfloat16: 24,
            torch.float16: 24}


def _fan_in(m):
    if isinstance(m, nn.Linear):
        return m.in_features
    return m.weight[0].numel()  # in_channels / groups x kernel


def _scale(fan_in):
    """The power of two nearest the bound of a unit-gain uniform init,
    sqrt(3 / fan_in): weights k x scale / 8, |k| <= 8, have std about
    1 / sqrt(fan_in), so activations stay O(1) through deep stacks."""
    return 2.0 ** round(math.log2(math.sqrt(3 / fan_in)))


def _ints(shape, low, high, gen):
    return torch.randint(low, high + 1, tuple(shape), generator=gen)


def _quantizer_top(q):
    """A, the smallest integer multiple of 1 / (smallest positive level) of
    a weight quantizer: with alpha = A x 2^-e every level x alpha is a
    short dyadic number (uniform: A = 2^(b-1) - 1; APoT: the sum of the
    largest terms over the smallest, e.g. 24 for 4 bits)."""
    from fastsnn_mm.quantization.weight_quant import (
        APoTWeightQuantizer,
        UniformWeightQuantizer,
    )
    if isinstance(q, UniformWeightQuantizer):
        return float(2 ** (q.bits - 1) - 1)
    if isinstance(q, APoTWeightQuantizer):
        levels = q.levels.double()
        inv = 1 / levels[levels > 0].min()
        m, e = torch.frexp(inv)  # 8 significant bits: the exact quotient
        return float(torch.ldexp(torch.round(m * 256) / 256, e))
    raise TypeError(f'make_dyadic: unknown weight quantizer {type(q)}')


@torch.no_grad()
def make_dyadic(model, seed=0, thetas=THETAS, bn_var=(0.25, 1.0, 4.0)):
    """Put every value a spiking run sums on a coarse dyadic grid, in place;
    returns ``model`` in eval mode.

    * conv / linear weights: k x s / 8, k in [-8, 8], s the power of two
      nearest sqrt(3 / fan_in) (unit gain): 2^-5 steps for the 3x3 stem
      on 3 channels, 2^-7 for 3x3 convs on 64 channels; biases k x 2^-6,
      k in [-16, 16];
    * weight-quantized layers: the quantizer's clip alpha = A x 2^-e (see
      :func:`_quantizer_top`), so each quantized weight level x alpha is a
      short dyadic number (in float64 the levels carry their float32
      rounding: dyadic still, about 26 bits, far inside 53);
    * BatchNorm: weight k / 8 in [0.5, 1.5], bias k / 16 in [0, 0.375],
      running_mean k / 16 in [-0.5, 0.5], running_var a power of 4 from
      ``bn_var`` and ``eps = 0``: 1 / sqrt(var) is a power of two, so BN
      and its fold into the conv (weight x gamma / sqrt(var)) are exact;
    * QuantReLU alphas / neuron thetas: one of ``thetas`` per layer (k / 2),
      so spikes x theta are multiples of 1/2.

    Bit budget (float32: 24 bits). A term of a conv / linear sum is a
    weight (a multiple of s / 8: 2^-5 for the 3x3 stem on 3 channels to
    2^-8 for fan-in ~1000; x 2^-3 for a folded BN gamma, x 2 for var 1/4)
    times an input (images k / 16; spikes x theta, k / 2; their averages
    over 2^p pixels, k / 2^(p+1)): every term and partial sum is a multiple
    of 2^-q (q: the product of the two grids) no larger than the largest
    sum of |terms|, so it is exact when that bound / 2^-q < 2^24.
    :func:`assert_sums_exact` measures it per run: 12 bits (BN unfolded)
    to 17 (BN folded) for the ResNet, conv net, Tiny-YOLO and DeepLab of
    the tests in float32; 43 of float64's 53 with float64 APoT weights.
    Average pools must average 2^p elements (2x2, 4x4 windows; a global
    pool over 8x8): a 3x3 window or an odd adaptive pool divides by 9 or
    25 and rounds, and the conv after it sums rounded values (no longer
    exact; the check names that conv).
    """
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            s = _scale(_fan_in(m))
            q = getattr(m, 'weight_quantizer', None)
            if q is None:
                m.weight.copy_(_ints(m.weight.shape, -8, 8, gen) * (s / 8))
            else:
                top = _quantizer_top(q)
                alpha = top * 2.0 ** round(math.log2(s / top))
                w = (torch.rand(m.weight.shape, generator=gen) * 2 - 1)
                w.view(-1)[0] = 1.0  # max |w| = alpha where alpha = max|w|
                m.weight.copy_(w * alpha)
                if getattr(q, 'learnable', False):
                    q.alpha.fill_(alpha)
                    q.initialized.fill_(1)
                    q._ready = False
            if m.bias is not None:
                m.bias.copy_(_ints(m.bias.shape, -16, 16, gen) / 64)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.eps = 0.0
            if m.weight is not None:
                m.weight.copy_(_ints((n, ), 4, 12, gen) / 8)
                m.bias.copy_(_ints((n, ), 0, 6, gen) / 16)
            if m.running_mean is not None:
                m.running_mean.copy_(_ints((n, ), -8, 8, gen) / 16)
                pick = _ints((n, ), 0, len(bn_var) - 1, gen)
                m.running_var.copy_(torch.tensor(bn_var)[pick])
        elif isinstance(m, QuantReLU):
            m.alpha.fill_(thetas[int(_ints((), 0, len(thetas) - 1, gen))])
        elif hasattr(m, 'theta') and isinstance(m.theta, torch.Tensor):
            m.theta.fill_(thetas[int(_ints((), 0, len(thetas) - 1, gen))])
    return model.eval()


def dyadic_input(shape, seed=0, dtype=torch.float32, grid=1 / 16, top=32):
    """Inputs k x ``grid``, k uniform in [-top, top] (default: sixteenths
    in [-2, 2], std about 1.2, like ``randn``)."""
    gen = torch.Generator().manual_seed(seed)
    return (_ints(shape, -top, top, gen) * grid).to(dtype)


# -- proof, sum by sum ------------------------------------------------------

def grid_exponent(t):
    """The smallest q with every element of ``t`` a multiple of 2^-q (-1100
    for an all-zero tensor)."""
    t = t.detach().double().flatten()
    t = t[t != 0]
    if t.numel() == 0:
        return -1100
    m, e = torch.frexp(t)  # |m| in [0.5, 1): m x 2^53 is an integer
    mant = (m * 2.0 ** 53).to(torch.int64).abs()
    low = torch.log2((mant & -mant).double()).to(torch.int64)
    return int((53 - e - low).max())


def _effective(m):
    """(weight, bias) a conv / linear sums with (a folded BN included)."""
    folded = getattr(m, '_folded', None)
    partner = getattr(m, '_fold_partner', None)
    if folded is not None and partner is not None and not (
            torch.is_grad_enabled() or m.training or partner.training):
        return folded()
    weight = m.quantized_weight() if hasattr(m, 'quantized_weight') \
        else m.weight
    return weight, m.bias


def _abs_sum(m, x, w, b):
    """max over outputs of sum |w x| + |b|: bounds every partial sum."""
    x, w = x.detach().double().abs(), w.detach().double().abs()
    if isinstance(m, nn.Linear):
        out = F.linear(x, w)
    else:
        out = F.conv2d(x, w, None, m.stride, m.padding, m.dilation,
                       m.groups)
    if b is not None:
        shape = (-1, ) if isinstance(m, nn.Linear) else (-1, 1, 1)
        out = out + b.detach().double().abs().reshape(shape)
    return float(out.max()) if out.numel() else 0.0


def sum_bits(model, run):
    """{layer name: bits} the conv / linear sums of ``run()`` need: every
    term and partial sum is a multiple of 2^-q (q: the product grid and
    the bias grid) below the largest sum of |terms|, so the sums are
    exact in a dtype of that many mantissa bits, in any order."""
    bits, hooks = {}, []

    def hook(name):
        def record(m, args):
            x = args[0]
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                return
            w, b = _effective(m)
            q = grid_exponent(x) + grid_exponent(w)
            if b is not None:
                q = max(q, grid_exponent(b))
            top = _abs_sum(m, x, w, b)
            need = 0 if top == 0 else math.ceil(math.log2(top) + q + 1e-9)
            bits[name] = max(bits.get(name, 0), need)
        return record
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) or (
                isinstance(m, nn.Conv2d) and m.padding_mode == 'zeros'):
            hooks.append(m.register_forward_pre_hook(hook(name)))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return bits


def assert_sums_exact(model, run, dtype=torch.float32):
    """Every conv / linear sum of ``run()`` is exact in ``dtype``: any
    summation order (plan, batch split, CPU, library) gives its bits.
    Returns the most bits a sum needed."""
    bits = sum_bits(model, run)
    assert bits, 'no conv or linear ran'
    over = {k: v for k, v in bits.items() if v > MANTISSA[dtype]}
    assert not over, f'sums not exact in {dtype} (bits needed): {over}'
    return max(bits.values())


# -- non-dyadic values: a float bound, and ties -----------------------------

def float_bound(dtype, fan_in, magnitude):
    """How far two summation orders of one sum of ``fan_in`` terms may be
    apart: each order is within gamma_(n-1) x sum|terms| of the exact sum
    (gamma_k = k u / (1 - k u), u = eps / 2, Higham, Accuracy and Stability
    of Numerical Algorithms, 2nd ed., eq. 4.4), so two orders differ by at
    most about (n - 1) x eps x sum|terms|. ``magnitude`` bounds sum|terms|;
    we allow fan_in x eps x magnitude."""
    return fan_in * torch.finfo(dtype).eps * magnitude


def assert_close_up_to_ties(a, b, fan_in, magnitude=None,
                            max_tie_share=0.01, excused=None):
    """``a`` and ``b`` equal within :func:`float_bound` except at elements
    a threshold tie moved; returns the share of those elements.

    Float tensors: an element differing by more than the bound counts as
    moved by a tie (one spike more or less upstream moves an output by
    theta x w / T, orders of magnitude above the bound). Integer tensors
    (spike counts): any difference is a tie. ``excused`` (bool, broadcast
    to ``a``) marks elements known to be downstream of a tie (an image
    whose counts differ); they may differ by any amount and do not count
    toward the share. The share of moved, not excused elements must be at
    most ``max_tie_share``. ``magnitude`` bounds sum |terms| of the last
    sum behind each element (default: the larger max |a|, max |b|, 1,
    which is right when the terms do not cancel much).
    """
    a, b = a.detach(), b.detach()
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape)
    if a.is_floating_point():
        if magnitude is None:
            magnitude = max(float(a.abs().max()), float(b.abs().max()), 1.0)
        bound = float_bound(a.dtype, fan_in, magnitude)
    else:
        bound = 0
    moved = (a.double() - b.double()).abs() > bound
    if excused is not None:
        moved &= ~excused.expand_as(moved)
    share = float(moved.double().mean()) if moved.numel() else 0.0
    assert share <= max_tie_share, (
        f'{int(moved.sum())} of {moved.numel()} elements ({share:.2%}) '
        f'differ by more than {bound:.3g} (fan-in {fan_in}): more than '
        f'{max_tie_share:.2%} threshold ties')
    return share


def spike_counts(snn, x):
    """Each neuron's net spike count over the run, [B, ...] per neuron in
    module order, however the run split the steps into calls (the
    one-image sizing pass left out; needs B >= 2). Not for batch slices or
    neurons called at several places a pass."""
    from fastsnn_mm.spiking import IFNeuron
    batch, counts, hooks = x.shape[0], {}, []
    assert batch >= 2

    def record(m, args, out):
        if out.shape[0] % batch:
            assert out.shape[0] == 1, 'the run sliced the batch'
            return  # the one-image, one-step sizing pass
        steps = out.reshape(-1, batch, *out.shape[1:]) / m.theta
        total = steps.round().sum(0).to(torch.int32)
        counts[m] = counts[m] + total if m in counts else total
    neurons = [m for m in snn.modules() if isinstance(m, IFNeuron)]
    hooks = [n.register_forward_hook(record) for n in neurons]
    try:
        with torch.no_grad():
            out = snn(x)
    finally:
        for h in hooks:
            h.remove()
    return out, [counts[n] for n in neurons if n in counts]
