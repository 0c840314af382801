"""Find the non-linear function calls a forward makes on the spiking path.

Module surgery and the converter's module check see module objects; a
``F.relu(x)``, ``F.max_pool2d(x, 2)`` or ``x * y`` written inside a forward
is no module, and on the spiking path it acts on each time step's spikes,
so the SNN would differ from its QANN without a word (mmdet's FPN calls
``F.relu`` before its extra convs with ``relu_before_extra_convs=True``).

One forward, on a small zero input without autograd, runs under a
``TorchFunctionMode`` that sees every torch function call, with forward
hooks on every module telling whose forward made it. Tensors are marked as
on the spiking path where a (future) neuron outputs them (QuantReLU, a
plain ReLU before surgery, a ReLU-like module ``make_convertible``
replaces), and so is whatever is computed from a marked tensor. A call with
a marked input that :mod:`.spiking_rules` calls non-linear is recorded with
the path of the innermost module whose forward made it. Calls inside a
module the module rules govern (``nn.Sigmoid`` calls ``torch.sigmoid``) or
inside a neuron are that module's business, not recorded again; modules
under ``skip`` are off the spiking path: nothing in them is recorded and
their outputs are not marked.

Values do not matter, only where a tensor came from: a zero input marks
the same tensors as an image.
"""
from typing import List, NamedTuple, Optional

import torch
from mmengine.logging import print_log
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..utils.modules import eval_mode, forward_hooks
from ..utils.patterns import path_matches
from .call_sites import trace_input
from .spiking_rules import (
    Rule,
    base_name,
    becomes_neuron,
    display_name,
    function_rule,
    module_rule,
    routable,
)

#: image sides tried in turn: models whose linear layers fix the input
#: size (a flatten before the classifier) accept one of these
TRACE_SIZES = (64, 32, 28, 16, 8)
#: calls whose output does not carry its input's values (shape-only)
_CONSTANT = {'new_zeros', 'new_ones', 'new_full', 'new_empty', 'new_tensor',
             'zeros_like', 'ones_like', 'full_like', 'empty_like',
             'rand_like', 'randn_like', 'randint_like', 'size', 'dim',
             'numel'}
#: the path shown for calls made outside any module's forward (the code of
#: a task wrapper's ``spiking_path`` itself)
OUTSIDE = '<spiking_path code>'


class Route(NamedTuple):
    """ReLU-like calls a module's own forward makes, in call order."""
    path: str
    owner: nn.Module
    #: per routable call of one forward: (function name, Rule) when its
    #: input is on the spiking path (routed), None when not (left alone)
    plan: tuple


class Finding(NamedTuple):
    """A non-linear call on the spiking path that is not routed."""
    path: str
    name: str
    rule: Rule


class _State:
    """What one traced forward saw."""

    def __init__(self, model, skip):
        self.names = {}
        for name, m in model.named_modules(remove_duplicate=False):
            self.names.setdefault(m, name)
        self.skip = skip
        self.marks = {}  # id -> tensor (kept alive: no id reused)
        self.stack, self.quiet = [], 0
        self.forwards = {}  # owner -> [[(hot, name, rule)] per forward]
        self.found = {}  # (path, name) -> Rule

    # -- module hooks ---------------------------------------------------
    def _is_quiet(self, m):
        path = self.names.get(m, '')
        return (self.skip and path and path_matches(path, self.skip)) or \
            module_rule(m) is not None or becomes_neuron(m)

    def enter(self, m):
        def hook(mod, args):
            quiet = self._is_quiet(mod)
            self.stack.append((mod, quiet))
            self.quiet += quiet
            if not self.quiet:
                self.forwards.setdefault(mod, []).append([])
        return hook

    def leave(self, m):
        def hook(mod, args, out):
            _, quiet = self.stack.pop()
            self.quiet -= quiet
            path = self.names.get(mod, '')
            if self.skip and path and path_matches(path, self.skip):
                # declared off the spiking path (an input passed through
                # stays what it was)
                ins = {id(t) for t in _tensors(args)}
                for t in _tensors(out):
                    if id(t) not in ins:
                        self.marks.pop(id(t), None)
            elif becomes_neuron(mod):
                for t in _tensors(out):
                    self.marks[id(t)] = t
        return hook

    # -- function calls -------------------------------------------------
    def spiking(self, t) -> bool:
        return id(t) in self.marks

    def saw(self, func, args, kwargs, out):
        hot = any(map(self.spiking, _tensors((args, kwargs))))
        if hot and base_name(func) not in _CONSTANT:
            for t in _tensors(out):
                self.marks[id(t)] = t
        if self.quiet:
            return
        owner = self.stack[-1][0] if self.stack else None
        rule = function_rule(func, args, kwargs, self.spiking) if hot \
            else None
        if routable(func):
            calls = self.forwards.setdefault(owner, [[]])[-1]
            calls.append((rule is not None, display_name(func), rule))
        elif rule is not None:
            self.found.setdefault((self._path(owner), display_name(func)),
                                  rule)

    def _path(self, owner):
        if owner is None:
            return OUTSIDE
        return self.names.get(owner) or '<root>'

    # -- result ---------------------------------------------------------
    def result(self):
        """(routes, findings): ReLU-like calls that can be routed to a
        module, and every other non-linear call on the spiking path."""
        routes, found = [], dict(self.found)
        for owner, forwards in self.forwards.items():
            hot = [(name, rule) for calls in forwards
                   for on, name, rule in calls if on]
            if not hot:
                continue
            why = _unroutable(owner, forwards)
            if why:
                for name, _ in hot:
                    found.setdefault((self._path(owner), name),
                                     Rule('', why))
                continue
            plan = tuple((name, rule) if on else None
                         for on, name, rule in forwards[0])
            routes.append(Route(self._path(owner), owner, plan))
        return routes, [Finding(p, n, r) for (p, n), r in found.items()]


def _unroutable(owner, forwards) -> str:
    """Why the ReLU-like calls of ``owner`` cannot be routed by call order
    ('' when they can)."""
    if owner is None:
        return ('called outside any module\'s forward (in the task '
                'wrapper\'s spiking_path): only calls inside a module\'s '
                'forward can be routed to a module; call an nn.ReLU module '
                'there instead')
    pattern = {tuple(on for on, _, _ in calls) for calls in forwards}
    if len(pattern) > 1:
        return ('called in a varying order or number per forward, so calls '
                'cannot be routed by their order; call an nn.ReLU module '
                'there instead')
    return ''


def _tensors(obj) -> List[torch.Tensor]:
    leaves, _ = tree_flatten(obj)
    return [t for t in leaves if isinstance(t, torch.Tensor)]


class _Tracer(TorchFunctionMode):

    def __init__(self, state):
        super().__init__()
        self.state = state

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.state.saw(func, args, kwargs, out)
        return out


def trace_spiking_calls(model: nn.Module, run, skip=()):
    """Run ``run()`` once, traced (module docstring); returns ``(routes,
    findings)`` (:class:`Route`, :class:`Finding`)."""
    state = _State(model, list(skip or ()))
    modules = list(model.modules())
    with forward_hooks(modules, state.enter, pre=True), \
            forward_hooks(modules, state.leave), torch.no_grad(), \
            eval_mode(model), _Tracer(state):
        run()
    return state.result()


def _inputs(model):
    """Zero inputs to try: images of :data:`TRACE_SIZES` for a model with a
    conv, else one row for its first linear layer."""
    first = trace_input(model, TRACE_SIZES[0])
    if first is not None:
        yield first
        for size in TRACE_SIZES[1:]:
            yield trace_input(model, size)
        return
    lin = next((m for m in model.modules() if isinstance(m, nn.Linear)),
               None)
    if lin is not None:
        w = lin.weight
        yield torch.zeros(1, lin.in_features, device=w.device, dtype=w.dtype)


def check_spiking_calls(model: nn.Module, path=None, skip=(),
                        who: str = 'spiking-path check') -> Optional[tuple]:
    """:func:`trace_spiking_calls` of ``path`` (default: the model's
    ``spiking_path``, else the model itself) on a zero input.

    Returns ``(routes, findings)``, or None when the model cannot be traced
    (no conv or linear to size an input from, uninitialised lazy layers, or
    a forward that fails on every size tried); that is logged as a warning
    naming ``who``, as the calls are then not checked.
    """
    if any(isinstance(p, nn.parameter.UninitializedParameter)
           for p in model.parameters()):
        return _untraced(who, model, 'it has uninitialised lazy layers')
    path = path or getattr(model, 'spiking_path', model)
    err = 'no Conv2d or Linear to size an input from'
    for x in _inputs(model):
        try:
            return trace_spiking_calls(model, lambda: path(x), skip)
        except Exception as e:  # another size, else the warning below
            err = f'{tuple(x.shape)} input: {type(e).__name__}: {e}'
    return _untraced(who, model, err)


def _untraced(who, model, why):
    print_log(
        f'{who}: could not trace {type(model).__name__} ({why}); function '
        'calls on its spiking path (F.relu, F.max_pool2d, x * y, ...) are '
        'not checked', logger='current', level=30)
    return None
