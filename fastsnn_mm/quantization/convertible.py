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
* ReLU-like activations (``LeakyReLU``, ``PReLU``, ``ReLU6``, ``ELU``,
  ``SELU``, ``CELU``, ``GELU``, ``SiLU`` / mmcv ``Swish``, ``Hardswish`` /
  mmcv ``HSwish``, ``Mish``, ``Softplus``) and squashing hidden ones
  (``Tanh``, ``Hardtanh``, ``Softsign``) -> ``nn.ReLU``, which quantization
  surgery then makes a QuantReLU (the quantized ReLU clips at alpha, so
  ReLU6's top clip is learnt rather than lost).

Every substitute changes what the network computes, so a model (and a
checkpoint trained without them) must be trained, or fine-tuned, by QAT
with them; the log table says so.

Modules with no substitute are refused at once, by path and with the
reason, so no QAT run is spent on a model that cannot convert: sigmoid
gates (squeeze-excitation, attention) and softmax multiply two
activations, which spikes cannot; a stride-1 max-pool (SPP / SPPF blocks)
is a multi-scale max whose average would be another block; and norms that
normalise each input by its own statistics (GroupNorm, LayerNorm,
InstanceNorm) see one time step at a time in the SNN, so they are not
linear over time as an eval-mode BatchNorm is. What has a substitute and
what is refused, with the reasons, is :mod:`.spiking_rules`, the table the
converter's check reads too.

Operations written as function calls inside a forward are found by one
traced forward (:mod:`.spiking_trace`): ReLU-like calls (``F.relu``,
``torch.relu``, ``x.relu()``, ``F.leaky_relu``, ...) on the spiking path get
the ReLU substitute, routed to a ReLU child of the module that makes them
(:mod:`.functional_sites`, e.g. ``neck.fn_relu_0`` for mmdet FPN's
``relu_before_extra_convs``); every other non-linear call there
(``F.max_pool2d``, ``torch.sigmoid``, ``x * y`` of two spiking tensors) is
refused by module path and function name, like a module.
"""
from mmengine.logging import print_log
from torch import nn

from ..errors import UnconvertibleModelError
from ..utils.modules import replace_modules
from .functional_sites import install_routes
from .spiking_rules import module_rule
from .spiking_trace import check_spiking_calls


def make_convertible(model: nn.Module, skip=(), path=None) -> list:
    """Replace, in place, what has a standard spiking-friendly substitute
    (module docstring) and log one table of it; run before
    ``quantize_model``, which makes the new ReLUs QuantReLUs.

    Args:
        model: any module (an mm model, a backbone, ...).
        skip: module-path patterns left alone (``quant.skip``): declared
            off the spiking path.
        path: the callable traced for function calls on the spiking path
            (a task wrapper's ``spiking_path``); default: the model's
            ``spiking_path``, else the model itself.

    Returns:
        [(path, old type or function, new type)] of the replacements, in
        module order, then the routed function calls.

    Raises:
        UnconvertibleModelError: modules and function calls with no
            substitute, each by path with its reason (nothing is replaced
            then).
    """
    skip = [skip] if isinstance(skip, str) else list(skip or ())
    rules, refused = {}, []

    def plan(name, module):
        rule = module_rule(module)
        if rule is None:
            return None  # look inside
        if rule.refused:
            refused.append(f'  {name}: {type(module).__name__} -> '
                           f'{rule.note}')
        rules[id(module)] = rule
        return module  # nothing replaced yet, nothing below looked at

    replace_modules(model, plan, skip)
    traced = check_spiking_calls(model, path, skip, who='make_convertible')
    routes, findings = traced or ((), ())
    refused += [f'  {f.path}: {f.name} -> {f.rule.note}' for f in findings]
    if refused:
        raise UnconvertibleModelError(
            f'make_convertible: {len(refused)} module(s) or function '
            'call(s) on the spiking path have no spiking substitute (skip a '
            'module with quant.skip only if it is off the spiking path):\n'
            + '\n'.join(refused))
    rows = []
    for name, old, new in replace_modules(
            model, lambda n, m: rules[id(m)].make(m) if id(m) in rules
            else None, skip):
        shown = 'QuantReLU' if isinstance(new, nn.ReLU) else \
            type(new).__name__  # surgery quantizes the ReLU next
        rows.append((name, type(old).__name__, shown, rules[id(old)].note))
    for route in routes:
        for site, func, rule in install_routes(route.owner, route.plan):
            where = f'{route.path}.{site}' if route.path != '<root>' \
                else site
            rows.append((where, func, rule.use, 'a routed call: ' +
                         rule.note))
    _log_table(rows)
    return [(name, old, new) for name, old, new, _ in rows]


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
        f'make_convertible: replaced {len(rows)} module(s) or function '
        'call(s) with spiking-friendly substitutes. They compute something '
        'else than the originals: train the model by QAT with them (or '
        'fine-tune a checkpoint trained without them) before converting '
        'it.\n'
        + '\n'.join(lines), logger='current')
