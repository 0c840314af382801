"""The one table of what may stand on a network's spiking path.

In the SNN every layer after a neuron runs on spike trains, one time step
at a time. A layer that is linear over time (conv, linear, add, concat, an
average, an eval-mode BN, a resize) computes on spikes what it computed on
the QANN's activations: the time average of a conv of spikes is the conv of
their time average. Anything else (a max, a sigmoid, a product of two
activations, a norm over each step's own statistics) does not, and the SNN
would differ from its QANN without a word. This table says, for every module
type and torch function that is not linear, either what a convertible model
uses instead (:class:`Rule` with a factory and a note of what the substitute
changes) or why there is no substitute (a refusal reason).

Three places read it, so they cannot disagree:

* quantization surgery warns about every module the table governs;
* ``make_convertible`` replaces what has a substitute before QAT (modules,
  and ReLU-like function calls, which it routes to a ReLU module) and
  refuses the rest, by path with the reason;
* the converter's check refuses whatever is still there, with the same
  reason text.

Decisions, per activation (all substitutes change the function, so the
model is trained or fine-tuned by QAT with them):

* monotone, ReLU-shaped: LeakyReLU, PReLU, RReLU, ReLU6, ELU, CELU, SELU,
  GELU, SiLU / Swish, Mish, Hardswish / HSwish, Softplus -> a quantized
  ReLU (its learnt clip replaces ReLU6's fixed 6);
* squashing hidden activations: Tanh, Hardtanh, Softsign -> a quantized
  ReLU too; the negative half is lost, which a hidden layer retrains to (an
  output squashing belongs in the decode step, after the spiking path);
* Sigmoid, Hardsigmoid / HSigmoid, LogSigmoid, GLU: refused. A sigmoid on
  a spiking path is nearly always a gate that multiplies two activations
  (squeeze-excitation, attention), which spikes cannot, and a ReLU in its
  place would silently turn a gate into something else;
* softmax, attention, per-step norms, max-pools that do not downsample:
  refused (reasons below).
"""
from typing import Callable, NamedTuple, Optional

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from .quant_relu import QuantReLU

#: what a ReLU-like substitute becomes once surgery quantizes it
RELU = 'QuantReLU'


class Rule(NamedTuple):
    """What the spiking path does with one module type or function.

    Attributes:
        use: the substitute's name ('QuantReLU', 'AvgPool2d'); '' when
            refused.
        note: what the substitute changes, or why there is none: shown as
            it is by ``make_convertible``'s table and error and by the
            converter's error.
        make: the factory, old module (None for a function call) -> new
            module; None when refused.
    """
    use: str
    note: str
    make: Optional[Callable] = None

    @property
    def refused(self) -> bool:
        return self.make is None


def _new_relu(old=None):
    return nn.ReLU(inplace=bool(getattr(old, 'inplace', False)))


def _relu(what_is_lost=''):
    note = 'a quantized ReLU, clipped at a learnt alpha'
    return Rule(RELU, f'{note}: {what_is_lost}' if what_is_lost else note,
                _new_relu)


def _refuse(reason):
    return Rule('', reason)


RELU_ITSELF = _relu()
LEAKY = _relu('the negative slope is dropped')
SIX = _relu("the learnt clip takes the place of ReLU6's fixed 6")
SATURATING = _relu('the negative saturation is dropped')
SMOOTH = _relu('the small negative dip and the smooth corner are dropped')
SOFTPLUS = _relu('the smooth corner becomes a sharp one')
SQUASH = _relu('outputs lie in [0, alpha], no longer in [-1, 1] (a hidden '
               'activation retrains to it; an output squashing belongs in '
               'the decode step instead)')
GATE = _refuse(
    'a sigmoid gate multiplies two activations (squeeze-excitation, '
    'attention), which spikes cannot; drop the gate, or move an output '
    'sigmoid into the decode step after the spiking path')
SOFTMAX = _refuse(
    'a softmax normalises each time step by its own exponentials (not '
    'linear over time) and attention multiplies activations, which spikes '
    'cannot; move it into the decode step')
ATTENTION = _refuse('attention multiplies activations (and takes a '
                    'softmax), which spikes cannot')
PER_STEP_NORM = _refuse('normalises each time step by its own statistics '
                        '(not linear over time); use BN, which folds into '
                        'the conv')
POWER_POOL = _refuse('a power average of spikes is not linear over time; '
                     'use an average pool')
FRACTIONAL_POOL = _refuse('a max over random windows: a max of spike trains '
                          'is not the spike train of the max; use an '
                          'average pool')


def _pool_args(m):
    return f'kernel={m.kernel_size}, stride={m.stride}, padding={m.padding}'


def _is_one(size) -> bool:
    return all(s == 1 for s in (size if isinstance(size, (tuple, list))
                                else (size, )))


def _max_pool(avg_cls):
    """The rule of a ``MaxPoolNd`` instance: a downsampling one becomes the
    average of the same window (linear, so exact on spikes; the max keeps
    the strongest response of the window, the average dilutes it), padding
    left out of the average as the max ignores it."""

    def rule(m):
        if _is_one(m.kernel_size):
            return None  # a 1-wide max is a plain subsampling: linear
        if m.return_indices:
            return _refuse('max-pool returning indices (an unpooling needs '
                           'them): no spiking substitute')
        if not _is_one(m.dilation):
            return _refuse(f'dilated max-pool: {avg_cls.__name__} has no '
                           'dilation')
        if _is_one(m.stride):
            return _refuse('stride-1 max-pool (SPP-style): a multi-scale '
                           'max with no spiking substitute; drop the block')
        return Rule(avg_cls.__name__,
                    f'window average instead of max ({_pool_args(m)})',
                    lambda old: avg_cls(old.kernel_size, old.stride,
                                        old.padding, old.ceil_mode,
                                        count_include_pad=False))

    return rule


def _adaptive_max_pool(avg_cls):

    def rule(m):
        if m.return_indices:
            return _refuse('max-pool returning indices: no spiking '
                           'substitute')
        return Rule(avg_cls.__name__, 'average instead of max',
                    lambda old: avg_cls(old.output_size))

    return rule


def _mmcv_types(*names):
    """mmcv activation classes of these names (absent without mmcv, and
    those that are torch's own class in this mmcv)."""
    try:
        from mmcv.cnn import bricks
    except ImportError:
        return ()
    return tuple(getattr(bricks, n) for n in names if hasattr(bricks, n))


#: module type -> Rule, or a function of the instance -> Rule | None (None:
#: this instance is fine). Looked up along the instance's class hierarchy,
#: so subclasses follow their base (ReLU6 has its own entry before its base
#: Hardtanh's).
MODULE_RULES = {
    nn.LeakyReLU: LEAKY, nn.PReLU: LEAKY, nn.RReLU: LEAKY,
    nn.ReLU6: SIX,
    nn.ELU: SATURATING, nn.CELU: SATURATING, nn.SELU: SATURATING,
    nn.GELU: SMOOTH, nn.SiLU: SMOOTH, nn.Mish: SMOOTH, nn.Hardswish: SMOOTH,
    nn.Softplus: SOFTPLUS,
    nn.Tanh: SQUASH, nn.Hardtanh: SQUASH, nn.Softsign: SQUASH,
    nn.Sigmoid: GATE, nn.Hardsigmoid: GATE, nn.LogSigmoid: GATE,
    nn.GLU: GATE,
    nn.Softmax: SOFTMAX, nn.Softmin: SOFTMAX, nn.LogSoftmax: SOFTMAX,
    nn.Softmax2d: SOFTMAX,
    nn.MultiheadAttention: ATTENTION,
    nn.GroupNorm: PER_STEP_NORM, nn.LayerNorm: PER_STEP_NORM,
    nn.LocalResponseNorm: PER_STEP_NORM,
    nn.modules.instancenorm._InstanceNorm: PER_STEP_NORM,
    nn.MaxPool1d: _max_pool(nn.AvgPool1d),
    nn.MaxPool2d: _max_pool(nn.AvgPool2d),
    nn.MaxPool3d: _max_pool(nn.AvgPool3d),
    nn.AdaptiveMaxPool1d: _adaptive_max_pool(nn.AdaptiveAvgPool1d),
    nn.AdaptiveMaxPool2d: _adaptive_max_pool(nn.AdaptiveAvgPool2d),
    nn.AdaptiveMaxPool3d: _adaptive_max_pool(nn.AdaptiveAvgPool3d),
    nn.LPPool1d: POWER_POOL, nn.LPPool2d: POWER_POOL,
    nn.FractionalMaxPool2d: FRACTIONAL_POOL,
    nn.FractionalMaxPool3d: FRACTIONAL_POOL,
}
MODULE_RULES.update({t: SMOOTH for t in _mmcv_types('Swish', 'HSwish',
                                                    'GELU')})
MODULE_RULES.update({t: GATE for t in _mmcv_types('HSigmoid')})


def module_rule(module: nn.Module) -> Optional[Rule]:
    """The rule for ``module``, or None when it may stand on the spiking
    path as it is (or is a plain ``nn.ReLU``, which surgery quantizes)."""
    for cls in type(module).__mro__:
        entry = MODULE_RULES.get(cls)
        if entry is not None:
            return entry if isinstance(entry, Rule) else entry(module)
    return None


def becomes_neuron(module: nn.Module, rule: Optional[Rule] = None) -> bool:
    """Whether ``module`` is (or, after substitution and surgery, will be)
    a QuantReLU: its output is a spike train in the SNN."""
    if isinstance(module, QuantReLU) or type(module) is nn.ReLU:
        return True
    rule = module_rule(module) if rule is None else rule
    return rule is not None and rule.use == RELU


# -- functions ---------------------------------------------------------------
class FunctionRule(NamedTuple):
    """A torch function's rule, and when a call of it is not linear in its
    spiking inputs: ``when(args, kwargs, spiking)`` with ``spiking(t)``
    telling a spike-path tensor."""
    rule: Rule
    when: Callable


def _tensors(args, kwargs):
    leaves, _ = tree_flatten((args, kwargs))
    return [t for t in leaves if isinstance(t, torch.Tensor)]


def _any(args, kwargs, spiking):
    """Non-linear in any spiking input (the default)."""
    return any(spiking(t) for t in _tensors(args, kwargs))


def _two(args, kwargs, spiking):
    """A product: linear in one spiking factor, not in two."""
    return sum(map(spiking, _tensors(args, kwargs))) >= 2


def _divisor(index):
    """A division: linear in a spiking numerator, not in a spiking
    divisor (``x / y``: args[1]; ``2 / x``: ``__rdiv__(x, 2)``, args[0])."""

    def when(args, kwargs, spiking):
        div = args[index] if len(args) > index else kwargs.get('other')
        return isinstance(div, torch.Tensor) and spiking(div)

    return when


def _max_pool_call(args, kwargs, spiking):
    """A 1-wide max-pool is a subsampling (mmdet's FPN extra levels)."""
    k = args[1] if len(args) > 1 else kwargs.get('kernel_size')
    return not _is_one(k) and _any(args, kwargs, spiking)


_SPIKES_MAX = ('a max of spike trains is not the spike train of the max; '
               'use an average (nn.AvgPool2d, mean) or a stride-2 conv')
_PER_STEP = ('acts on each time step\'s spikes, not on their average (not '
             'linear over time)')
_RELU_CALLS = {'relu': RELU_ITSELF, 'leaky_relu': LEAKY, 'rrelu': LEAKY,
               'prelu': LEAKY, 'relu6': SIX, 'elu': SATURATING,
               'celu': SATURATING, 'selu': SATURATING, 'gelu': SMOOTH,
               'silu': SMOOTH, 'mish': SMOOTH, 'hardswish': SMOOTH,
               'softplus': SOFTPLUS, 'tanh': SQUASH, 'hardtanh': SQUASH,
               'softsign': SQUASH}


def _calls(rule, names, when=_any):
    return {n: FunctionRule(rule, when) for n in names.split()}


#: function base name (see :func:`base_name`) -> FunctionRule
FUNCTION_RULES = {n: FunctionRule(r, _any) for n, r in _RELU_CALLS.items()}
FUNCTION_RULES.update({
    **_calls(GATE, 'sigmoid hardsigmoid log_sigmoid logsigmoid glu'),
    **_calls(SOFTMAX, 'softmax log_softmax softmin'),
    **_calls(ATTENTION, 'scaled_dot_product_attention'),
    **_calls(PER_STEP_NORM, 'layer_norm group_norm instance_norm rms_norm '
             'local_response_norm normalize'),
    **_calls(_refuse(_SPIKES_MAX), 'max_pool1d max_pool2d max_pool3d '
             'max_pool1d_with_indices max_pool2d_with_indices '
             'max_pool3d_with_indices', _max_pool_call),
    **_calls(_refuse(_SPIKES_MAX), 'adaptive_max_pool1d adaptive_max_pool2d '
             'adaptive_max_pool3d fractional_max_pool2d fractional_max_pool3d '
             'max min amax amin maximum minimum fmax fmin argmax argmin topk '
             'sort median cummax cummin'),
    **_calls(_refuse(f'a clip {_PER_STEP}; use an nn.ReLU module (its '
                     'QuantReLU clips at a learnt alpha)'),
             'clamp clip clamp_min clamp_max threshold'),
    **_calls(_refuse(f'an elementwise non-linearity {_PER_STEP}'),
             'abs sign sgn exp exp2 expm1 log log2 log10 log1p sqrt rsqrt '
             'square pow rpow reciprocal floor ceil round trunc frac fmod '
             'remainder floor_divide erf sin cos tanhshrink hardshrink '
             'softshrink lp_pool1d lp_pool2d'),
    **_calls(_refuse(f'a comparison {_PER_STEP}'),
             'gt ge lt le eq ne greater greater_equal less less_equal'),
    **_calls(_refuse(f'a norm or spread {_PER_STEP}'), 'norm std var'),
    **_calls(_refuse('multiplies two spiking activations, which spikes '
                     'cannot (the mean of a product is not the product of '
                     'the means); keep one factor off the spiking path'),
             'mul multiply matmul mm bmm einsum bilinear outer dot inner '
             'baddbmm addmm addbmm addcmul kron', _two),
    **_calls(_refuse('divides by a spiking activation, which spikes cannot; '
                     'divide by a constant'),
             'div divide true_divide', _divisor(1)),
    **_calls(_refuse('divides by a spiking activation, which spikes cannot; '
                     'divide by a constant'), 'rdiv rtruediv', _divisor(0)),
})

#: dunder spellings (``2 / x`` reaches a mode as ``__rdiv__``)
_ALIASES = {'truediv': 'div', 'itruediv': 'div', 'imul': 'mul',
            'rmul': 'mul', 'rmatmul': 'matmul', 'imatmul': 'matmul',
            'ipow': 'pow', 'floordiv': 'floor_divide',
            'rfloordiv': 'floor_divide', 'ifloordiv': 'floor_divide'}


def base_name(func) -> str:
    """``func``'s name in :data:`FUNCTION_RULES`: the same for its
    ``torch.``, ``F.`` and ``Tensor.`` spellings and in-place forms
    (``relu_``, ``__imul__``)."""
    name = getattr(func, '__name__', '')
    if name.startswith('__') and name.endswith('__'):
        name = name[2:-2]
        return _ALIASES.get(name, name)
    return name[:-1] if name.endswith('_') and not name.startswith('_') \
        else name


def display_name(func) -> str:
    """How the code spelled ``func``: ``F.relu``, ``torch.relu``,
    ``Tensor.relu``."""
    name = getattr(func, '__name__', repr(func))
    qual = getattr(func, '__qualname__', '') or ''
    where = getattr(func, '__module__', None) or ''
    if qual.split('.')[0] in ('TensorBase', 'Tensor'):
        return f'Tensor.{name}'
    if where.startswith(('torch.nn.functional', 'torch._C._nn')):
        return f'F.{name}'
    return f'torch.{name}'


def is_in_place(func, args, kwargs) -> bool:
    """Whether a call writes its result over its first argument."""
    name = getattr(func, '__name__', '')
    return (name.endswith('_') and not name.startswith('_')) or \
        kwargs.get('inplace') is True or any(a is True for a in args[1:])


def routable(func) -> bool:
    """Whether ``make_convertible`` can route calls of ``func`` to a module
    (the ReLU-like functions: their substitute is a ReLU module)."""
    entry = FUNCTION_RULES.get(base_name(func))
    return entry is not None and not entry.rule.refused


def function_rule(func, args, kwargs, spiking) -> Optional[Rule]:
    """The rule of this call when it is not linear in its spiking inputs,
    else None (linear functions, and those the table does not list, pass:
    add, cat, interpolate, mean, avg_pool, conv, view, getitem, ...)."""
    entry = FUNCTION_RULES.get(base_name(func))
    if entry is None or not entry.when(args, kwargs, spiking):
        return None
    return entry.rule
