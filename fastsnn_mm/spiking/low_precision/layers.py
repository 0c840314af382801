"""Conv2d / Linear layers that run on spikes in a low precision.

A :class:`SpikeConv2d` or :class:`SpikeLinear` takes the place of a plain
layer after conversion. It holds that layer's own parameter objects under
the same names (state_dict keys, optimizers and ``.to()`` see no change)
and keeps the layer itself, unregistered, for the float32 path: the layer
it replaced still computes whatever does not read spikes, a BN folding
(:mod:`..fold_bn`) included.

Which calls read spikes is learnt from the model's first call
(:mod:`.trace`): a call whose input is a neuron's output runs in the spike
dtype, and so does every later call of a layer all of whose first-call
inputs came from one neuron. Everything else runs in float32, and so does
any call while autograd wants gradients (the low-precision path has none).
"""
import weakref

import torch
from torch import nn

from ..fold_bn import FoldedConv2d, _fold_active
from ..spike_codes import codes_of
from .fast_paths import say_if_slow, time_once, timed
from .int_grid import find_int_grid, round_to_int_grid
from .kernels import (
    codes_form,
    int8_supported,
    prepare_float,
    prepare_int8,
    run,
)
from .options import SPIKE_DTYPES, is_int8, rounds_weights

#: how a layer ran: in the spike dtype, or float32 and why
FLOAT32 = 'float32'
MIXED = 'fed by a neuron at one call and by another input at another'

#: layer -> (key of the float weights and threshold, prepared weights).
#: Kept off the module: oneDNN's packed weights neither copy nor pickle,
#: and a deep copy or a saved model must not carry stale ones along.
_PREPARED = weakref.WeakKeyDictionary()


def _same(key, other):
    """Whether two :meth:`SpikeInput._prepare` keys name the same tensors
    at the same versions (and the same device)."""
    return all((a is b if isinstance(a, torch.Tensor) or a is None
                else a == b) and va == vb
               for (a, va), (b, vb) in zip(key, other))


class SpikeInput:
    """What both layer kinds share; mixed in front of Conv2d / Linear."""

    def _adopt(self, layer, spike_dtype, trace):
        for name, param in layer.named_parameters(recurse=False):
            setattr(self, name, param)
        for name, buf in layer.named_buffers(recurse=False):
            setattr(self, name, buf)
        self.spike_dtype = spike_dtype
        #: what the spike-reading calls run in ('int8', 'bfloat16', ...,
        #: 'float32'); None until a call read spikes
        self.runs_in = None
        #: why a spike-reading layer runs in float32, else None
        self.why_float32 = None
        #: the form of spikes it reads (:func:`.kernels.codes_form`), None
        #: while it reads none: what its neuron is asked to write
        self.codes_form = None
        # plain attributes, not submodules: no second set of state keys
        vars(self).update(_float_layer=layer, _trace=trace, _source=None)
        return self.train(layer.training)

    def train(self, mode: bool = True):
        # the layer it replaced is no child (no second set of state keys),
        # so eval() would not reach it: its mode decides whether its BN
        # partner folds (fold_bn) and how its float32 calls run
        super().train(mode)
        self._float_layer.train(mode)
        return self

    # -- which neuron feeds this layer -------------------------------------
    def _spike_source(self, x):
        """The neuron whose output ``x`` is, or None (run in float32)."""
        seen, trace = self._source, self._trace
        if not trace.active:
            return seen if isinstance(seen, nn.Module) else None
        neuron = trace.producer(x)
        if neuron is not None and (seen is None or seen is neuron):
            vars(self)['_source'] = neuron
        elif seen is not False:  # float32 from now on
            vars(self)['_source'] = False
            if seen is not None:  # it read spikes before: say why
                self._stays_float32(MIXED)
                _PREPARED.pop(self, None)
        return neuron

    def forward(self, x):
        neuron = self._spike_source(x)
        if neuron is None or not self._lowerable(x):
            return self._float32(x)
        if torch.is_grad_enabled() and (
                x.requires_grad or self.weight.requires_grad):
            self._trace.note_autograd()
            return self._float32(x)
        prepared = self._prepare(neuron.theta, x.device)
        if prepared is None:
            return self._float32(x)
        # the spikes as its neuron wrote them for it, or made by run()
        codes = codes_of(x, self.codes_form)
        out = run(self, x, prepared, codes)
        # once per process, on a call of the run itself: the model's first
        # call (the trace; the runner's one-image sizing pass) is all
        # fixed costs and would name a fast dtype slow
        if not self._trace.active and not timed(x.device, self.spike_dtype):
            time_once(x.device, self.spike_dtype, self._trace.name_of(self),
                      lambda: run(self, x, prepared, codes),
                      lambda: self._float32(x))
        return out

    def _lowerable(self, x):
        """Empty batches and unbatched conv inputs stay float32."""
        return x.numel() > 0 and (x.dim() == 4 or not isinstance(
            self, nn.Conv2d))

    def _float32(self, x):
        layer = self._float_layer
        layer.training = self.training
        return layer.forward(x)

    # -- weights in the spike dtype, made again when an input changed ----
    def _float_weights(self):
        layer = self._float_layer
        if isinstance(layer, FoldedConv2d) and _fold_active(
                layer, layer._fold_partner):
            return layer._folded()
        return self.weight, self.bias

    def _prepare(self, theta, device):
        weight, bias = self._float_weights()
        # the tensors themselves, not their ids: a folded weight made anew
        # may take a freed one's address, and both start at version 0
        key = [(t, None if t is None else t._version)
               for t in (weight, bias, theta)] + [(str(device), None)]
        known = _PREPARED.get(self)
        if known is None or not _same(known[0], key):
            with torch.no_grad():
                known = (key, self._lower(weight, bias, theta, device))
            _PREPARED[self] = known
            say_if_slow(device, self.spike_dtype)
        return known[1]

    def _lower(self, weight, bias, theta, device):
        if self._source is False:
            return self._stays_float32(MIXED)
        self.runs_in, self.why_float32 = self.spike_dtype, None
        prepared = self._lowered(weight, bias, theta, device)
        self.codes_form = None if prepared is None else \
            codes_form(self, prepared)
        return prepared

    def _lowered(self, weight, bias, theta, device):
        if not is_int8(self.spike_dtype):
            return prepare_float(weight, bias, theta,
                                 SPIKE_DTYPES[self.spike_dtype])
        if not int8_supported(self):
            return self._stays_float32('int8 needs zero padding')
        grid = find_int_grid(weight)
        if grid is None and rounds_weights(self.spike_dtype):
            grid = round_to_int_grid(weight)
            self.runs_in = f'int8 (weights rounded, moved up to ' \
                f'{grid.moved:.2%} of the channel maximum)'
        if grid is None:
            return self._stays_float32('weights on no int8 grid')
        return prepare_int8(self, grid, bias, theta, device)

    def _stays_float32(self, why):
        self.runs_in, self.why_float32 = FLOAT32, why
        self.codes_form = None
        return None

    def extra_repr(self):
        return (f'{super().extra_repr()}, spike_dtype={self.spike_dtype!r}'
                f', runs_in={self.runs_in!r}')


class SpikeConv2d(SpikeInput, nn.Conv2d):
    """A Conv2d that runs on spikes in ``spike_dtype`` (see module doc)."""

    @classmethod
    def sharing(cls, conv, spike_dtype, trace):
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size,
                  conv.stride, conv.padding, conv.dilation, conv.groups,
                  conv.bias is not None, conv.padding_mode, device='meta')
        return new._adopt(conv, spike_dtype, trace)


class SpikeLinear(SpikeInput, nn.Linear):
    """A Linear that runs on spikes in ``spike_dtype`` (see module doc)."""

    @classmethod
    def sharing(cls, linear, spike_dtype, trace):
        new = cls(linear.in_features, linear.out_features,
                  linear.bias is not None, device='meta')
        return new._adopt(linear, spike_dtype, trace)
