"""Fold eval-mode BatchNorm into the conv before it, for SNN inference.

In the SNN every conv and BN runs on T steps' worth of data; a BN folded
into its conv's weight and bias saves one elementwise pass and one tensor
per step. With float32 spikes that is 3-4 % of the SNN's time
(``benchmarks/bench_snn.py --layers 7``, no gain above the noise); with a
low-precision ``spike_dtype`` the convs are several times faster, and a
BN that runs on its own (in place, :mod:`.inplace_bn`) was a sixth of a
QResNet-18 run in int8. Where the neuron after a BN applies it in its own
pass (:mod:`.deferred_bn`: QResNet's blocks and stem) folding saves
nothing more (``benchmarks/bench_spike_dtype.py --fold-bn int8``: 0.19
either way at T = 7). Folding rounds differently from conv then BN, so it
stays opt-in; the low-precision trace's log line suggests it.

Folding is done at run time, not by rewriting parameters: the checkpoint
keys and values stay those of the QANN (SNN checkpoints still load into
QANN models and back), and the folded copy is recomputed whenever a
parameter or statistic changes (layer-wise fine-tuning,
``load_state_dict``).

Only pairs whose order is certain are folded:
  * ``nn.Sequential`` children ``Conv2d, BatchNorm2d`` next to each other;
  * mmcv ``ConvModule`` whose ``order`` puts ``norm`` right after ``conv``;
  * pairs a module declares in ``conv_bn_pairs`` (attribute names).
The folded path runs only in eval mode without autograd; otherwise conv and
BN run as they are.
"""
import torch
from torch import nn

from ..utils.modules import replace_modules


def _fold_active(conv, bn) -> bool:
    return not (torch.is_grad_enabled() or conv.training or bn.training)


class FoldedConv2d(nn.Conv2d):
    """A Conv2d that, at inference, applies its BN partner's affine map."""

    @classmethod
    def sharing(cls, conv: nn.Conv2d) -> 'FoldedConv2d':
        """A FoldedConv2d of ``conv``'s shape holding ``conv``'s own
        parameter objects (optimizers and checkpoints see no change)."""
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size,
                  conv.stride, conv.padding, conv.dilation, conv.groups,
                  conv.bias is not None, conv.padding_mode, device='meta')
        return _take_state(new, conv)

    def forward(self, x):
        bn = self._fold_partner
        if not _fold_active(self, bn):
            return super().forward(x)
        weight, bias = self._folded()
        return self._conv_forward(x, weight, bias)

    def _folded(self):
        bn = self._fold_partner
        tensors = [self.weight, self.bias, bn.weight, bn.bias,
                   bn.running_mean, bn.running_var]
        key = tuple((id(t), t._version, t.data_ptr(), t.dtype)
                    if t is not None else None for t in tensors) + (bn.eps, )
        if getattr(self, '_fold_key', None) != key:
            # the fold mmcv.cnn.fuse_conv_bn applies, without touching the
            # parameters themselves
            with torch.no_grad():
                factor = bn.running_var.add(bn.eps).sqrt().reciprocal()
                if bn.weight is not None:
                    factor = factor * bn.weight
                bias = -bn.running_mean if self.bias is None \
                    else self.bias - bn.running_mean
                bias = bias * factor
                if bn.bias is not None:
                    bias = bias + bn.bias
                weight = self.weight * factor.reshape(-1, 1, 1, 1)
            self._fold_cache = (weight, bias)
            self._fold_key = key
        return self._fold_cache


class FoldedBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d that passes its input through when its conv folded it."""

    @classmethod
    def sharing(cls, bn: nn.BatchNorm2d) -> 'FoldedBatchNorm2d':
        """A FoldedBatchNorm2d holding ``bn``'s own parameters and running
        statistics."""
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine,
                  bn.track_running_stats, device='meta')
        return _take_state(new, bn)

    def forward(self, x):
        if _fold_active(self._fold_partner, self):
            return x
        return super().forward(x)



def _take_state(new: nn.Module, old: nn.Module) -> nn.Module:
    """Give ``new`` (built on the meta device, so nothing is allocated)
    ``old``'s parameter and buffer objects and its train/eval mode."""
    for name, param in old.named_parameters(recurse=False):
        setattr(new, name, param)
    for name, buf in old.named_buffers(recurse=False):
        setattr(new, name, buf)
    new._non_persistent_buffers_set = set(old._non_persistent_buffers_set)
    return new.train(old.training)


#: BN classes that may sit after a conv in a pair: plain ones and those
#: made for a pair (:mod:`.inplace_bn` adds its own), so that a model
#: converted again pairs its BNs again
PAIRABLE_BN = {nn.BatchNorm2d, FoldedBatchNorm2d}


def _foldable(conv, bn) -> bool:
    return (type(conv) in (nn.Conv2d, FoldedConv2d)
            and type(bn) in PAIRABLE_BN
            and bn.track_running_stats and bn.running_var is not None
            and bn.num_features == conv.out_channels)


def conv_bn_slots(model):
    """[(parent, conv name, BN name)] of every conv -> BN pair whose
    execution order is certain: the BN reads the conv's output and nothing
    else does (what folding the BN into the conv, or running it in place
    on the conv's output, rests on)."""
    slots = []
    for mod in model.modules():
        if isinstance(mod, nn.Sequential):
            names = list(mod._modules)
            slots += [(mod, a, b) for a, b in zip(names, names[1:])
                      if _foldable(mod._modules[a], mod._modules[b])]
        order = getattr(mod, 'order', None)
        if getattr(mod, 'with_norm', False) and isinstance(order, tuple) \
                and 'conv' in order and 'norm' in order \
                and order.index('norm') == order.index('conv') + 1:
            if _foldable(mod.conv, mod.norm):
                slots.append((mod, 'conv',
                              getattr(mod, 'norm_name', 'norm')))
        for conv_name, bn_name in getattr(mod, 'conv_bn_pairs', ()):
            conv, bn = getattr(mod, conv_name), getattr(mod, bn_name)
            if _foldable(conv, bn):
                slots.append((mod, conv_name, bn_name))
    return slots


def norm_act_slots(model):
    """[(parent, BN name, activation name)] of every BN whose output goes
    to the activation right after it and nowhere else, for certain:
    neighbours in a plain ``nn.Sequential`` (a subclass may override
    ``forward``), and the pairs a module declares in ``norm_act_pairs``
    (attribute names; what its forward promises). Not mmcv's
    ``ConvModule``: ``forward(x, activate=False)`` skips its act."""
    slots = []
    for mod in model.modules():
        if type(mod) is nn.Sequential:
            names = list(mod._modules)
            slots += [(mod, a, b) for a, b in zip(names, names[1:])
                      if isinstance(mod._modules[a], nn.BatchNorm2d)]
        for bn_name, act_name in getattr(mod, 'norm_act_pairs', ()):
            slots.append((mod, bn_name, act_name))
    return [(p, b, a) for p, b, a in slots
            if isinstance(p._modules.get(b), nn.BatchNorm2d)
            and p._modules.get(a) is not None]


def conv_bn_pairs(model):
    """[(conv, bn)] of every pair whose execution order is certain."""
    return [(getattr(parent, c), getattr(parent, b))
            for parent, c, b in conv_bn_slots(model)]


def fold_batchnorm(model) -> int:
    """Make every certain conv -> BN pair of ``model`` fold at inference;
    returns how many pairs were found.

    Each pair's conv and BN are replaced by a :class:`FoldedConv2d` and a
    :class:`FoldedBatchNorm2d` built to share their parameters and
    statistics: the same tensors under the same state_dict keys.
    """
    new_for = {}
    for conv, bn in conv_bn_pairs(model):
        if id(conv) in new_for or id(bn) in new_for:
            continue  # a module in two pairs: leave the later one alone
        folded_conv = FoldedConv2d.sharing(conv)
        folded_bn = FoldedBatchNorm2d.sharing(bn)
        # plain attributes, not submodules: no duplicate state_dict keys
        object.__setattr__(folded_conv, '_fold_partner', folded_bn)
        object.__setattr__(folded_bn, '_fold_partner', folded_conv)
        new_for[id(conv)], new_for[id(bn)] = folded_conv, folded_bn
    # a module registered at several places is replaced everywhere
    replace_modules(model, lambda path, m: new_for.get(id(m)))
    return len(new_for) // 2
