"""One quantizer per call site of an activation module.

mm blocks call one activation module at several places: ResNet's
BasicBlock calls ``self.relu`` after its first conv and again after the
residual add, Bottleneck three times. Surgery turns that module into one
QuantReLU, so one clip (alpha) serves activations of different ranges,
where the paper's networks have a clip per activation. :func:`split_call_sites`
gives each call site a QuantReLU of its own; in the SNN each becomes its own
neuron layer.

Call sites are found by a traced forward, not by reading the code: forward
hooks on every module, on a dummy input, record which module's forward made
each call (its *caller*) and how often per call of that caller. The forward
code of mm blocks branches (``with_cp``, optional downsample, plugins) and
calls helpers and closures, which source inspection would have to follow
and ``torch.fx`` cannot trace through; the hooks see what runs.

The calls are routed at run time by :class:`CallSiteActivation`, which takes
the shared module's place: the caller's forward pre-hook restarts its count,
and the k-th call of one caller's forward goes to site k. Counting modulo
the number of sites also routes the calls a checkpointed block (``with_cp``)
repeats in backward: they come after the forward's last call, in forward
order, and land on the sites they came from.

Kept shared (with a log line), because routing by count cannot tell the
calls apart: a module called from the forwards of several modules, or
directly from a function, or a number of times per call that varies. A
module called once per call of its caller is never split, also when the
caller runs several times (a detection head applied to every pyramid level
shares its weights, and so its clips, across levels by design).

Checkpoints of the shared form (``relu.alpha``, or an SNN's ``relu.theta``)
load into the split form with the shared clip copied to every site, and one
log line; :func:`expand_shared_form` does it for ``load_state_dict`` and for
the tools' checkpoint checks.
"""
import copy

import torch
from mmengine.logging import print_log
from torch import nn

from ..errors import BadArgumentError
from ..utils.modules import eval_mode, forward_hooks
from .quant_relu import QuantReLU

#: state-dict names of an activation's clip: QuantReLU's alpha, and the
#: threshold an SNN checkpoint stores for it
CLIP_NAMES = ('alpha', 'theta')
#: side of the zero image the call sites are traced on; any size the
#: network accepts gives the same calls
TRACE_SIZE = 64


class CallSiteActivation(nn.Module):
    """Stands where one activation module was called at several places;
    ``sites[k]`` serves the k-th call of each of its caller's forwards.

    Args:
        sites: one module per call site, in call order (QuantReLUs, or
            their neurons after conversion).
    """

    def __init__(self, sites):
        super().__init__()
        self.sites = nn.ModuleList(sites)
        self._next = 0

    def restart(self, caller=None, args=None):
        """The caller's forward starts: its next call is the first site.
        (A forward pre-hook of the caller.)"""
        self._next = 0

    def forward(self, x):
        k = self._next
        self._next = k + 1
        return self.sites[k % len(self.sites)](x)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a load that starts at this module or below the model's root (the
        # root's pre-hook expands the shared form for all sites at once)
        if _expand_one(state_dict, prefix, len(self.sites)):
            print_log(f'{prefix[:-1]}: the shared clip of a checkpoint '
                      f'copied to its {len(self.sites)} call sites',
                      logger='current')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _expand_one(state_dict, prefix, n_sites) -> bool:
    """Move ``prefix + 'alpha'`` / ``'theta'`` to each site's key."""
    expanded = False
    for name in CLIP_NAMES:
        shared = state_dict.pop(prefix + name, None)
        if shared is None:
            continue
        for k in range(n_sites):
            state_dict.setdefault(f'{prefix}sites.{k}.{name}', shared)
        expanded = True
    return expanded


def expand_shared_form(model, state_dict, prefix='') -> list:
    """Rewrite a shared-form ``state_dict`` (in place) to ``model``'s
    per-call-site keys; returns the module paths it rewrote."""
    done = []
    for name, mod in model.named_modules():
        if isinstance(mod, CallSiteActivation):
            key = f'{prefix}{name}.' if name else prefix
            if _expand_one(state_dict, key, len(mod.sites)):
                done.append(name)
    return done


def _load_pre_hook(module, state_dict, prefix, *args):
    """The root's load pre-hook: one log line for the whole checkpoint."""
    done = expand_shared_form(module, state_dict, prefix)
    if done:
        print_log(
            f'per-call-site quantizers: the checkpoint has one clip for each '
            f'of {len(done)} activation module(s) called at several places '
            f'({", ".join(done[:3])}{" ..." if len(done) > 3 else ""}); '
            'each call site starts from that clip', logger='current')


def trace_calls(model, run):
    """Run ``run()`` once with hooks on every module of ``model``.

    Returns ``(calls, callers)``: calls per module, and per QuantReLU the
    set of modules whose forward called it (None: called from outside any
    module's forward).
    """
    quants = {m for m in model.modules() if isinstance(m, QuantReLU)}
    calls, callers, stack = {}, {}, []

    def enter(module):
        def hook(mod, args):
            calls[mod] = calls.get(mod, 0) + 1
            if mod in quants:
                callers.setdefault(mod, set()).add(
                    stack[-1] if stack else None)
            stack.append(mod)
        return hook

    def leave(module):
        def hook(mod, args, out):
            stack.pop()  # returns None: the output stays as it is
        return hook

    modules = list(model.modules())
    with forward_hooks(modules, enter, pre=True), \
            forward_hooks(modules, leave), torch.no_grad(), eval_mode(model):
        run()
    return calls, callers


def _sites_of(quant, calls, callers):
    """(call sites per call of its caller, the caller), or (None, why the
    module stays shared)."""
    who = callers.get(quant, set())
    if len(who) != 1:
        return None, f'called from the forwards of {len(who)} modules'
    caller = next(iter(who))
    if caller is None:
        return None, 'called from outside any module\'s forward'
    n, per = calls[quant], calls[caller]
    if n % per:
        return None, f'called {n} times in {per} calls of its caller'
    return n // per, caller


def split_call_sites(model, run) -> dict:
    """Give every QuantReLU that one forward calls at several places one
    QuantReLU per call site (each starting from the shared one's alpha and
    bits); in place.

    Args:
        model: the module holding the QuantReLUs.
        run: a callable that makes one forward of the network's spiking
            path (see :func:`trace_input`).

    Returns:
        {module path: number of call sites} of the modules split.
    """
    return _split(model, *trace_calls(model, run))


def _split(model, calls, callers) -> dict:
    names = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        names.setdefault(mod, name)
    split, kept = {}, []
    for quant in [m for m in callers if calls[m] > 1]:
        n, caller_or_why = _sites_of(quant, calls, callers)
        if n is None:
            kept.append(f'{names[quant]} ({caller_or_why})')
        elif n > 1:
            split[names[quant]] = _install(model, quant, n, caller_or_why)
    if kept:
        print_log('per-call-site quantizers: kept shared (one alpha for '
                  'several call sites): ' + '; '.join(kept),
                  logger='current', level=30)
    done = {path: len(router.sites) for path, router in split.items()}
    if done:
        model.register_load_state_dict_pre_hook(_load_pre_hook)
        listed = ', '.join(f'{p} ({n})' for p, n in list(done.items())[:3])
        print_log(
            f'per-call-site quantizers: {len(done)} activation module(s) '
            f'called at several places now have one QuantReLU per call site '
            f'({listed}{" ..." if len(done) > 3 else ""}): '
            f'{sum(done.values())} QuantReLUs where there were {len(done)}',
            logger='current')
    return done


def _install(model, quant, n, caller):
    """Put one :class:`CallSiteActivation` wherever ``quant`` was."""
    sites = [quant] + [copy.deepcopy(quant) for _ in range(n - 1)]
    router = CallSiteActivation(sites)
    for parent in list(model.modules()):
        # _modules, not named_children(): that lists an object only once
        for attr, child in list(parent._modules.items()):
            if child is quant and parent is not router.sites:
                setattr(parent, attr, router)
    caller.register_forward_pre_hook(router.restart)
    return router


def trace_input(model, size: int = TRACE_SIZE):
    """A zero image batch of one for tracing ``model``: the channels of its
    first conv, its parameters' device and dtype (None without a conv)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)),
                None)
    if conv is None:
        return None
    w = conv.weight
    return torch.zeros(1, conv.in_channels, size, size, device=w.device,
                       dtype=w.dtype)


def split_path_call_sites(model, path) -> dict:
    """:func:`split_call_sites` for a task wrapper's spiking ``path``,
    traced on :func:`trace_input`. A path that cannot be traced keeps its
    shared quantizers, with a warning saying why: the model still trains
    and converts as it is (the runner gives each call of a shared neuron its
    own state), only with one clip for those call sites."""
    x = trace_input(model)
    try:
        if x is None:
            raise TypeError('no Conv2d to read the input channels from')
        traced = trace_calls(model, lambda: path(x))
    except Exception as err:  # best effort, as the docstring says
        shape = 'an' if x is None else f'a {tuple(x.shape)}'
        print_log(
            f'per-call-site quantizers: could not trace {type(model).__name__}'
            f' on {shape} input ({type(err).__name__}: {err}); activation '
            'modules called at several places keep one alpha. Set '
            'quant=dict(..., per_call_site=False) to skip the trace',
            logger='current', level=30)
        return {}
    return _split(model, *traced)


def check_flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise BadArgumentError(
            f'quant.{name} must be True or False, got {value!r}')
    return value
