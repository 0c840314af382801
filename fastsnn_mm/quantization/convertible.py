"""Make a stock mm model convertible before QAT: standard substitutes for
what an SNN cannot run (``quant=dict(bits=3, make_convertible=True)``).

The Fast-SNN paper made Tiny-YOLO convertible by hand: max-pooling and
leaky ReLUs out, quantized ReLUs in, then QAT. This surgery does the same
on any mm model, for the modules that have a standard spiking-friendly
substitute:

* ``MaxPool2d`` that downsamples (stride > 1) -> ``AvgPool2d`` of the same
  window, stride, padding and ``ceil_mode``. An average is linear, so the
  SNN computes it exactly on spikes (the time average of averages is the
  average of time averages); a max of spike trains is not the spike train
  of the max. It is a different function: a max keeps the strongest
  response of the window, the average dilutes it by the window's weaker
  ones. Padding is left out of the average (``count_include_pad=False``)
  as the max ignores it. ``AdaptiveMaxPool2d`` -> ``AdaptiveAvgPool2d``.
* ``LeakyReLU``, ``ReLU6``, ``SiLU`` / mmcv ``Swish``, ``Hardswish`` /
  mmcv ``HSwish``, ``GELU`` -> ``nn.ReLU``, which quantization surgery then
  makes a QuantReLU (the quantized ReLU clips at alpha, so ReLU6's top
  clip is learnt rather than lost).

Every substitute changes what the network computes, so a model (and a
checkpoint trained without them) must be trained, or fine-tuned, by QAT
with them; the log table says so.

Modules with no substitute are refused at once, by path and with the
reason, so no QAT run is spent on a model that cannot convert: sigmoid
gates (squeeze-excitation, attention maps) and softmax multiply two
activations, which spikes cannot; a stride-1 max-pool (SPP / SPPF blocks)
is a multi-scale max whose average would be another block; and norms that
normalise each input by its own statistics (GroupNorm, LayerNorm,
InstanceNorm) see one time step at a time in the SNN, so they are not
linear over time as an eval-mode BatchNorm is. Operations written as
function calls inside a forward (``F.max_pool2d``, ``torch.sigmoid``) are
not modules, and module surgery cannot see them.
"""
from mmengine.logging import print_log
from torch import nn

from ..errors import UnconvertibleModelError
from ..utils.patterns import children_outside


def _mmcv_types(*names):
    """mmcv activation classes of these names (absent without mmcv)."""
    try:
        from mmcv.cnn import bricks
    except ImportError:
        return ()
    return tuple(getattr(bricks, n) for n in names if hasattr(bricks, n))


#: activations a quantized ReLU replaces
RELU_LIKE = (nn.LeakyReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.GELU) + \
    _mmcv_types('Swish', 'HSwish', 'GELU')

#: module types with no substitute -> why
NO_SUBSTITUTE = {
    nn.Sigmoid: 'a sigmoid gate multiplies two activations, which spikes '
    'cannot; move it into the decode step or drop the gate',
    nn.Hardsigmoid: 'a sigmoid gate multiplies two activations, which '
    'spikes cannot; drop the gate (e.g. squeeze-excitation)',
    nn.Softmax: 'attention softmax multiplies activations, which spikes '
    'cannot; move it into the decode step',
    nn.MultiheadAttention: 'attention multiplies activations (and takes a '
    'softmax), which spikes cannot',
    nn.GroupNorm: 'normalises each time step by its own statistics (not '
    'linear over time); use BN, which folds into the conv',
    nn.LayerNorm: 'normalises each time step by its own statistics (not '
    'linear over time); use BN, which folds into the conv',
    nn.modules.instancenorm._InstanceNorm: 'normalises each time step by '
    'its own statistics (not linear over time); use BN',
}
NO_SUBSTITUTE.update({t: NO_SUBSTITUTE[nn.Hardsigmoid]
                      for t in _mmcv_types('HSigmoid')})


def _pool_args(m):
    return f'kernel={m.kernel_size}, stride={m.stride}, padding={m.padding}'


def _substitute(m):
    """(substitute module, note) for ``m``, (None, why not) when it has
    none, or None when ``m`` needs nothing."""
    if isinstance(m, nn.MaxPool2d):
        if m.return_indices:
            return None, 'max-pool returning indices (an unpooling needs ' \
                'them): no spiking substitute'
        if m.dilation not in (1, (1, 1)):
            return None, 'dilated max-pool: AvgPool2d has no dilation'
        if m.stride in (1, (1, 1)):
            return None, 'stride-1 max-pool (SPP-style): a multi-scale ' \
                'max with no spiking substitute; drop the block'
        avg = nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                           count_include_pad=False)
        return avg, f'window average instead of max ({_pool_args(m)})'
    if isinstance(m, nn.AdaptiveMaxPool2d):
        if m.return_indices:
            return None, 'max-pool returning indices: no spiking substitute'
        return nn.AdaptiveAvgPool2d(m.output_size), 'average instead of max'
    if isinstance(m, RELU_LIKE):
        return nn.ReLU(inplace=getattr(m, 'inplace', False)), \
            'a quantized ReLU: clipped at a learnt alpha'
    for typ, why in NO_SUBSTITUTE.items():
        if isinstance(m, typ):
            return None, why
    return None


def make_convertible(model: nn.Module, skip=()) -> list:
    """Replace, in place, what has a standard spiking-friendly substitute
    (module docstring) and log one table of it; run before
    ``quantize_model``, which makes the new ReLUs QuantReLUs.

    Args:
        model: any module (an mm model, a backbone, ...).
        skip: module-path patterns left alone (``quant.skip``).

    Returns:
        [(path, old type, new type)] of the replacements, in module order.

    Raises:
        UnconvertibleModelError: modules with no substitute, each by path
            with its reason (nothing is replaced then).
    """
    skip = [skip] if isinstance(skip, str) else list(skip or ())
    plan, refused, done = [], [], {}
    for name, parent, attr, child in children_outside(model, skip):
        found = _substitute(child)
        if found is None:
            continue
        new, note = found
        if new is None:
            refused.append(f'  {name}: {type(child).__name__} -> {note}')
        else:
            plan.append((name, parent, attr, child, new, note))
    if refused:
        raise UnconvertibleModelError(
            f'make_convertible: {len(refused)} module(s) have no spiking '
            'substitute (skip them with quant.skip only if they are off '
            'the spiking path):\n' + '\n'.join(refused))
    rows = []
    for name, parent, attr, child, new, note in plan:
        # a module object registered at several places stays one object
        new = done.setdefault(id(child), new)
        setattr(parent, attr, new)
        shown = 'QuantReLU' if isinstance(new, nn.ReLU) else \
            type(new).__name__  # surgery quantizes the ReLU next
        rows.append((name, repr(child), shown, note))
    _log_table(rows)
    return [(name, old.split('(')[0], new) for name, old, new, _ in rows]


def _log_table(rows):
    """One table: one row per kind of replacement, with every path."""
    if not rows:
        print_log('make_convertible: nothing to replace (no max-pool and '
                  'no non-ReLU activation)', logger='current')
        return
    kinds = {}
    for name, old, new, note in rows:
        kinds.setdefault((old, new, note), []).append(name)
    lines = ['| was | now | count | where | note |', '|---|---|---|---|---|']
    for (old, new, note), paths in kinds.items():
        lines.append(f'| {old} | {new} | {len(paths)} | '
                     f'{", ".join(paths)} | {note} |')
    print_log(
        f'make_convertible: replaced {len(rows)} module(s) with spiking-'
        'friendly substitutes. They compute something else than the '
        'originals: train the model by QAT with them (or fine-tune a '
        'checkpoint trained without them) before converting it.\n'
        + '\n'.join(lines), logger='current')
