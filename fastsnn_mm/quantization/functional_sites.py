"""Route a module's functional ReLU calls to ReLU modules of its own.

``make_convertible`` gives a ReLU-like call on the spiking path written in
a forward (mmdet FPN's ``F.relu(outs[-1])`` before its extra convs) the
same substitute as a ReLU-like module: a ReLU module, which surgery makes a
QuantReLU and the converter a neuron. The forward's code is not rewritten;
the module gets a child ``fn_relu_<k>`` per such call, and while its
forward runs a ``TorchFunctionMode`` sends its k-th ReLU-like call to the
child the trace found for it (call order, as for
:class:`~.call_sites.CallSiteActivation`); calls whose input was off the
spiking path stay as they were.

Only calls made by the module's own forward are routed, not those of its
children (each routes its own): global module hooks, held only while the
module's forward runs, count how deep in its children a call is. The
children are looked up by name at each call, so surgery's QuantReLU and
the converter's neuron serve the routed call once they replace the ReLU;
they are ordinary submodules (state_dict keys ``<module>.fn_relu_<k>.alpha``
or ``.theta``, found by ``neurons_of`` and the runner). The hooks are bound
methods of one plain object, so ``deepcopy`` and pickling carry them.
"""
from mmengine.logging import print_log
from torch.nn.modules import module as torch_module
from torch.overrides import TorchFunctionMode

from .spiking_rules import is_in_place, routable

#: name of the k-th routed call's module on its caller
SITE_NAME = 'fn_relu_{}'


class FunctionalSites:
    """The forward pre-hook and hook of a module whose forward's ReLU-like
    calls are routed.

    Args:
        plan: per ReLU-like call of one forward, in call order: the name of
            the child that serves it, or None (left as it is).
    """

    def __init__(self, plan):
        self.plan = tuple(plan)
        self.warned = False
        self._routes = []

    def enter(self, module, args):
        route = _Route(self, module)
        route.start()
        self._routes.append(route)

    def leave(self, module, args, output):
        if self._routes:
            self._routes.pop().stop()


class _Route(TorchFunctionMode):
    """Active while one forward of the module runs."""

    def __init__(self, sites, owner):
        super().__init__()
        self.sites, self.owner = sites, owner
        self.calls = self.depth = 0
        self._handles = ()

    def start(self):
        self._handles = (
            torch_module.register_module_forward_pre_hook(self._down),
            torch_module.register_module_forward_hook(self._up,
                                                      always_call=True))
        self.__enter__()

    def stop(self):
        self.__exit__(None, None, None)
        for h in self._handles:
            h.remove()

    def _down(self, module, args):
        self.depth += 1

    def _up(self, module, args, output):
        if self.depth:  # the owner's own exit comes here at depth 0
            self.depth -= 1

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.depth == 0 and routable(func):
            k, self.calls = self.calls, self.calls + 1
            plan = self.sites.plan
            site = plan[k] if k < len(plan) else self._extra(k)
            if site is not None:
                x = args[0] if args else kwargs['input']
                out = getattr(self.owner, site)(x)
                if is_in_place(func, args, kwargs):
                    return x.copy_(out)
                return out
        return func(*args, **kwargs)

    def _extra(self, k):
        if not self.sites.warned:
            self.sites.warned = True
            print_log(
                f'{type(self.owner).__name__}: ReLU-like call {k + 1} of a '
                f'forward, where make_convertible traced '
                f'{len(self.sites.plan)}: left as a function call (a '
                'forward taking another branch than the traced one)',
                logger='current', level=30)
        return None


def install_routes(owner, plan) -> list:
    """Give ``owner`` a ReLU child per routed call and the hooks routing
    them; ``plan`` as :class:`~.spiking_trace.Route`'s. Returns [(child
    name, function name, Rule)] of the routed calls."""
    names, done, k = [], [], 0
    for call in plan:
        if call is None:
            names.append(None)
            continue
        while hasattr(owner, SITE_NAME.format(k)):
            k += 1
        name, rule = call
        site = SITE_NAME.format(k)
        owner.add_module(site, rule.make(None))
        names.append(site)
        done.append((site, name, rule))
    sites = FunctionalSites(names)
    owner.register_forward_pre_hook(sites.enter)
    owner.register_forward_hook(sites.leave, always_call=True)
    return done
