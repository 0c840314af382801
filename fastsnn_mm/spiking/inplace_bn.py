"""BatchNorm run in place on its conv's output, at SNN inference on the CPU.

In the SNN every BN runs on T steps' worth of data. Where a BN follows
its conv for certain (:func:`.fold_bn.conv_bn_slots`: the BN is the only
reader of that output), it may write its result over the conv's output
instead of into a new tensor: the same ATen kernel, the same bits, one
tensor fewer per layer and call, and the neuron after it (which writes
over its own input) keeps working in the same memory. Unlike folding BN
into the conv (:mod:`.fold_bn`, opt-in) nothing rounds differently, so it
is on in every converted model (what it saves: README, "Spikes in low
precision").

Where its output goes to a neuron and nowhere else, for certain
(:func:`.fold_bn.norm_act_slots`: declared ``norm_act_pairs``, plain
``nn.Sequential`` neighbours), it writes nothing at all: the neuron's C
kernel applies it in its own pass (:mod:`.deferred_bn`, ATen's bits).

It runs in place only when nothing can tell: eval mode, autograd off, a
CPU float tensor laid out densely and not a view, no forward hook on the
conv (which may keep its output) or on the BN, none global, and ATen's
out= kernel giving the functional BN's bits over its own input (checked
once per process and dtype). Otherwise it is a plain BatchNorm2d.
"""
import collections
import functools

import torch
from torch import nn

from ..utils.modules import replace_modules
from . import deferred_bn, kernel
from .fold_bn import PAIRABLE_BN, _take_state, conv_bn_slots, norm_act_slots
from .layout import dense
from .neurons import IFNeuron

_DTYPES = (torch.float32, torch.float64)


class InPlaceBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d that, at CPU inference, overwrites its conv's output
    with its own (see module doc). ``_conv_slot`` (parent module, name):
    where its conv lives, read at each call (the conv there may be
    replaced, e.g. by a low-precision layer, and carry hooks)."""

    @classmethod
    def sharing(cls, bn: nn.BatchNorm2d, parent, conv_name, act_name=None):
        """One holding ``bn``'s own parameters and statistics (the same
        state_dict keys and tensors), after ``parent.<conv_name>`` and,
        given ``act_name``, read only by ``parent.<act_name>``."""
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine,
                  bn.track_running_stats, device='meta')
        new = _take_state(new, bn)
        # plain attributes, not submodules: no second set of keys
        object.__setattr__(new, '_conv_slot', (parent, conv_name))
        object.__setattr__(new, '_act_slot',
                           None if act_name is None else (parent, act_name))
        return new

    def forward(self, x):
        if not self._may_overwrite(x):
            return super().forward(x)
        factors = self._neuron_can_apply(x)
        if factors is not None:
            return deferred_bn.defer(x, self, factors)
        return self.normalize_(x)

    def normalize_(self, x):
        """This BN over ``x`` in place (ATen's kernel); returns ``x``."""
        torch.ops.aten.native_batch_norm.out(
            x, self.weight, self.bias, self.running_mean, self.running_var,
            False, 0.0, self.eps, out=x, save_mean=x.new_empty(0),
            save_invstd=x.new_empty(0))
        return x

    def _neuron_can_apply(self, x):
        """(alpha, beta, fma) when the neuron after it (``_act_slot``, set for
        certain pairs: :func:`.fold_bn.norm_act_slots`) may apply this BN
        in its own pass (:mod:`.deferred_bn`): a neuron in a run, no hook
        on it, float32, and factors giving ATen's bits; else None."""
        slot = getattr(self, '_act_slot', None)
        if slot is None or x.dtype != torch.float32:
            return None
        act = slot[0]._modules.get(slot[1])
        if not isinstance(act, IFNeuron) or act.timestep_run is None or \
                act._forward_hooks or act._forward_pre_hooks:
            return None
        return self._factors(x)

    def _factors(self, x):
        """(alpha, beta, fma) for the C kernel: this BN as ATen computes
        it here, factors formed as ATen forms them and x * alpha + beta in
        one rounding (``fma``, as a compiler contracts it) or two; which
        one is found on a few images of ``x`` against ATen, bit for bit,
        once per version of the parameters (None: neither matches, or no
        compiled kernel)."""
        tensors = (self.weight, self.bias, self.running_mean,
                   self.running_var)
        key = tuple(None if t is None else (id(t), t._version)
                    for t in tensors) + (self.eps, )
        held = getattr(self, '_factors_at', None)
        if held is not None and held[0] == key:
            return held[1]
        factors = None
        if kernel.available() and self.running_mean.dtype == torch.float32:
            with torch.no_grad():
                probe = x[:2].clone(memory_format=torch.preserve_format)
                want = self.normalize_(probe.clone(
                    memory_format=torch.preserve_format))
                for fma in (True, False):
                    alpha, beta = kernel.bn_factors(self, fma)
                    if torch.equal(kernel.bn_apply(probe, alpha, beta, fma),
                                   want):
                        factors = (alpha, beta, fma)
                        break
        object.__setattr__(self, '_factors_at', (key, factors))
        return factors

    def _may_overwrite(self, x) -> bool:
        if self.training or torch.is_grad_enabled() or \
                self.running_var is None or x.device.type != 'cpu' or \
                x.dtype not in _DTYPES or x.dim() != 4 or \
                x._base is not None or not dense(x):
            return False
        if any(t is not None and t.dtype != x.dtype
               for t in (self.weight, self.running_var)):
            return False
        parent, name = self._conv_slot
        conv = parent._modules.get(name)
        if conv is None or conv._forward_hooks or self._forward_hooks or \
                self._forward_pre_hooks or \
                nn.modules.module._global_forward_hooks or \
                nn.modules.module._global_forward_pre_hooks:
            return False
        return in_place_works(x.dtype)


PAIRABLE_BN.add(InPlaceBatchNorm2d)


@functools.lru_cache(maxsize=None)
def in_place_works(dtype) -> bool:
    """Whether ATen's out= BN over its own input gives the functional BN's
    bits here, in both dense layouts and with channel counts that leave
    vector tails (checked once on small cases: the out= aliasing is
    ATen's to change)."""
    gen = torch.Generator().manual_seed(0)
    try:
        for channels, layout in ((5, torch.contiguous_format),
                                 (37, torch.channels_last),
                                 (32, torch.channels_last)):
            bn = nn.BatchNorm2d(channels).to(dtype).eval()
            for t in (bn.weight.data, bn.bias.data, bn.running_mean):
                t.copy_(torch.randn(channels, generator=gen))
            bn.running_var.copy_(torch.rand(channels, generator=gen) + 0.1)
            x = torch.randn(3, channels, 5, 7, generator=gen, dtype=dtype)
            x = x.contiguous(memory_format=layout)
            with torch.no_grad():
                want = bn(x)
                torch.ops.aten.native_batch_norm.out(
                    x, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                    False, 0.0, bn.eps, out=x, save_mean=x.new_empty(0),
                    save_invstd=x.new_empty(0))
            if not torch.equal(x, want) or x.stride() != want.stride():
                return False
    except (RuntimeError, AttributeError, TypeError):
        return False
    return True


def bn_in_place(model) -> int:
    """Make the BN of every certain conv -> BN pair of ``model`` (not
    folded already) an :class:`InPlaceBatchNorm2d`; returns how many."""
    slots = conv_bn_slots(model)
    pairs_of = collections.Counter(id(p._modules[b]) for p, _, b in slots)
    # BN -> activation, each BN once, in the same parent as its conv
    acts = collections.defaultdict(list)
    for parent, bn_name, act_name in norm_act_slots(model):
        acts[id(parent._modules[bn_name])].append((parent, act_name))
    new_for = {}
    for parent, conv_name, bn_name in slots:
        bn = parent._modules[bn_name]
        # folded or in place already; or after two convs: which one's
        # hooks to ask is not certain
        if type(bn) is nn.BatchNorm2d and pairs_of[id(bn)] == 1:
            after = acts.get(id(bn), [])
            act_name = after[0][1] if len(after) == 1 and \
                after[0][0] is parent else None
            new_for[id(bn)] = InPlaceBatchNorm2d.sharing(
                bn, parent, conv_name, act_name)
    replace_modules(model, lambda path, m: new_for.get(id(m)))
    return len(new_for)


__all__ = ['InPlaceBatchNorm2d', 'bn_in_place', 'in_place_works']
