"""Turn a built model into a QANN in place (module surgery).

``act_cfg`` reaches only the activations a model builds from a config; mm
blocks such as ResNet's BasicBlock/Bottleneck hard-code ``nn.ReLU``. Surgery
swaps module objects, so it reaches those too. It cannot see ``F.relu``
calls inside a forward (``make_convertible`` routes those on the spiking
path to ReLU modules first), nor tell that one module object is called at
several places (mm ResNet blocks call one ``self.relu`` two or three
times): such a module becomes one QuantReLU with one alpha here
(:func:`shared_quant_relus` lists them); a traced forward then gives it one
QuantReLU per call site (:mod:`.call_sites`, on by default for ``quant=``
configs).
"""
import torch
from mmengine.logging import print_log
from torch import nn

from ..utils.modules import forward_hooks
from ..utils.patterns import children_outside, path_matches
from .quant_relu import QuantReLU, check_bits
from .spiking_rules import module_rule
from .weight_quant import (
    QuantConv2d,
    QuantLinear,
    _WeightQuantizer,
    check_weight_bits,
)


def _plain_types(base):
    """Exact layer types whose forward is the stock one (mmcv's wrappers
    only add empty-tensor handling); subclasses with their own forward,
    e.g. deformable or adaptive-padding convs, are left alone."""
    types = {base}
    try:
        from mmcv.cnn.bricks import wrappers
        types.add(getattr(wrappers, base.__name__))
    except (ImportError, AttributeError):
        pass
    return tuple(types)


def _check_weight_cfg(weight):
    if not isinstance(weight, dict) or 'type' not in weight:
        raise ValueError(f'quant weight must be None or a dict like '
                         f"dict(type='uniform', bits=4), got {weight!r}")
    cfg = dict(weight)
    check_weight_bits(cfg.setdefault('bits', 4))
    check_weight_bits(cfg.setdefault('first_last_bits', 8))
    return cfg


def _quantize_weights(model, cfg, skip):
    """Wrap plain Conv2d/Linear layers; re-bit existing quantized ones."""
    cfg = dict(cfg)
    bits, fl_bits = cfg.pop('bits'), cfg.pop('first_last_bits')
    first_last = cfg.pop('first_last', None)
    convs, lins = _plain_types(nn.Conv2d), _plain_types(nn.Linear)
    layers = [(p, a, n, m) for n, p, a, m in children_outside(model, ())
              if type(m) in convs + lins or isinstance(m, (QuantConv2d,
                                                           QuantLinear))]
    if first_last is None:
        # first conv, and the last linear (else the last conv) in
        # registration order, skipped ones included: the paper keeps the
        # input and output layers at 8 bits
        first_last = [n for _, _, n, m in layers[:1]]
        tail = [n for _, _, n, m in layers if isinstance(m, nn.Linear)] or \
            [n for _, _, n, _ in layers]
        first_last += tail[-1:]
    made = {}  # a layer registered at several places: one quantized copy
    for parent, attr, name, layer in layers:
        if path_matches(name, skip):
            continue
        b = fl_bits if name in first_last else bits
        if isinstance(layer, (QuantConv2d, QuantLinear)):
            layer.weight_quantizer.set_bits(b)
            continue
        if id(layer) not in made:
            qcls = QuantConv2d if type(layer) in convs else QuantLinear
            made[id(layer)] = qcls.from_float(layer, dict(cfg, bits=b))
        setattr(parent, attr, made[id(layer)])


def quantize_model(model: nn.Module, bits: int, skip=(), alpha=None,
                   weight=None) -> nn.Module:
    """Make ``model`` a ``bits``-bit QANN in place and return it.

    Args:
        model: any module (an mm model, a backbone, ...).
        bits: activation bits, 1..8. Every ``nn.ReLU`` becomes
            ``QuantReLU(bits, alpha)``; existing QuantReLUs only change bits
            and keep their alpha (progressive 4 -> 3 -> 2-bit training).
        skip: module-name prefixes or fnmatch patterns left untouched.
        alpha: initial clip of new QuantReLUs (None: QuantReLU's default).
        weight: None (activations only) or ``dict(type='uniform'|'apot',
            bits=4, first_last_bits=8, learnable=..., first_last=[names])``;
            plain Conv2d/Linear become QuantConv2d/QuantLinear, the first
            conv and last linear at ``first_last_bits``.
    """
    check_bits(bits)
    if isinstance(skip, str):
        skip = [skip]
    skip = list(skip or ())
    kwargs = {} if alpha is None else dict(alpha=float(alpha))
    replaced, others, ruled = {}, [], []
    for name, parent, attr, child in list(children_outside(model, skip)):
        if isinstance(child, QuantReLU):
            child.set_bits(bits)
        elif type(child) is nn.ReLU:
            if id(child) not in replaced:
                replaced[id(child)] = QuantReLU(bits, inplace=child.inplace,
                                                **kwargs)
            setattr(parent, attr, replaced[id(child)])
        elif module_rule(child) is not None and \
                not path_matches(name, ruled):  # not inside another
            ruled.append(name)
            others.append(f'{name} ({type(child).__name__})')
    if others:
        # the spiking rules table: what the converter will refuse
        print_log(f'quantize_model: {len(others)} module(s) have no spiking '
                  'equivalent and stay as they are (full precision); the '
                  'converter refuses them. quant=dict(..., '
                  'make_convertible=True) replaces those with a substitute '
                  f'before surgery: {", ".join(others[:5])}'
                  + (' ...' if len(others) > 5 else ''),
                  logger='current', level=30)
    if weight is not None:
        _quantize_weights(model, _check_weight_cfg(weight), skip)
    # new QuantReLUs live on the model's device, in its float dtype
    ref = next((p for p in model.parameters() if p.is_floating_point()),
               None)
    if ref is not None:
        for q in replaced.values():
            q.to(device=ref.device, dtype=ref.dtype)
    return model


def count_quant_relus(model: nn.Module) -> int:
    """Distinct QuantReLU modules in ``model``."""
    return len({id(m) for m in model.modules() if isinstance(m, QuantReLU)})


def count_relus(model: nn.Module) -> int:
    """Plain ``nn.ReLU`` modules left in ``model`` (0 after surgery)."""
    return sum(type(m) is nn.ReLU for m in model.modules())


def quantizer_bits(model: nn.Module) -> dict:
    """Bits per quantizer name, to check what a config produced."""
    return {n: m.bits for n, m in model.named_modules()
            if isinstance(m, (QuantReLU, _WeightQuantizer))}


@torch.no_grad()
def shared_quant_relus(model: nn.Module, run) -> dict:
    """Names of QuantReLUs called more than once by ``run()`` -> call count.

    One forward is needed: sharing is a property of the forward code, not of
    the module tree.
    """
    calls = {}
    names = {m: n for n, m in model.named_modules()
             if isinstance(m, QuantReLU)}

    def counter(module):
        name = names[module]
        return lambda mod, i, o: calls.__setitem__(name,
                                                   calls.get(name, 0) + 1)

    with forward_hooks(names, counter):
        run()
    return {n: c for n, c in calls.items() if c > 1}
