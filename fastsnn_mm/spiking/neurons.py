"""Integrate-and-fire neurons that replace QuantReLU in the converted SNN.

A neuron keeps a membrane potential V (start theta/2), integrates its input
each step, fires +1 when V >= theta and subtracts theta (reset by
subtraction). The signed neuron also fires -1 (and adds theta back) when V
drops below zero while its net spike count is positive: this undoes spikes
that early inputs caused but later negative inputs cancelled (the
*sequential error*), so the count equals the QANN level. Output per step is
spike * theta, so the time average equals the QANN activation.

The update is the neuron's *rule* (:mod:`rules`, class attribute ``rule``);
the module around it is the same for every rule: threshold, conversion
from a QuantReLU, checkpoints, the run's state. :data:`NEURONS` gives the
neuron class of every registered rule by name: :class:`IFNeuron` (unsigned)
and :class:`SignedIFNeuron` (signed) are declared here, a rule registered
elsewhere gets a generated :class:`IFNeuron` subclass.

Two execution modes give the same spikes:
  * folded: time is folded into the batch axis. The neuron sees [T*B, ...]
    (or [B, ...] when its input is the same at every step, i.e. the layers
    before the first neuron ran only once) and loops over T itself.
  * streaming: the network is called once per step; the neuron's V and
    count carry over between calls. Memory does not grow with T.
  * folded in time chunks: each call presents a chunk of S < T steps folded
    into the batch, state carried over as in streaming; memory grows with
    S, not T.
How many steps a call presents, the batch size and the carried state are
the run's (:class:`run_state.TimestepRun`): a neuron runs the steps it is
handed and guesses nothing from its input's size. The update itself is
:mod:`functional`'s, through the fastest kernel for the device (C on the
CPU, Triton on CUDA), all with the same bits as the reference loop on that
device.
"""
import re
import sys
from collections.abc import Mapping

import torch
from torch import nn

from ..registry import MODELS
from . import deferred_bn
from .functional import backend_for, fold_time, if_folded, if_stateful
from .layout import channels_last_for_convs, step_major
from .rules import NEURON_RULES, SignedIF, UnsignedIF, as_rule
from .spike_codes import attach, codes_of

__all__ = ['IFNeuron', 'SignedIFNeuron', 'NEURONS', 'neuron_class',
           'threshold_from_alpha']


def threshold_from_alpha(alpha) -> torch.Tensor:
    """theta = |alpha| (at least 1e-8), a detached 1-element tensor on
    alpha's device and in its dtype: no host round trip."""
    return alpha.detach().abs().clamp_min(1e-8).reshape(1).clone()


#: rule name -> its neuron class (declared here, or made on first use)
_CLASSES = {}


class IFNeuron(nn.Module):
    """Integrate-and-fire neuron; as declared here, the unsigned rule (the
    comparison baseline). A subclass that sets ``rule`` follows that rule
    and becomes its neuron class in :data:`NEURONS` (the first one
    declared for a rule does).

    Args:
        theta (float | Tensor): threshold; a tensor keeps its device and
            dtype. Defaults to 1.0.
        bits (int | None): bits of the QuantReLU it replaced.
        inplace (bool): may write spikes over its input (QuantReLU's
            ``inplace``). Defaults to False.

    T is not a neuron's: the run presents its steps (the model's
    :class:`~.settings.SNNSettings` say how many).
    """

    #: the update (:class:`rules.NeuronRule`; a registered name or rule
    #: class in a subclass's body is resolved when the class is made)
    rule = as_rule(UnsignedIF)
    #: True for a class :func:`neuron_class` made for a rule
    generated = False
    #: the form its spike-reading layers take their input in
    #: (:class:`.spike_codes.SpikeCodes`, set per neuron by the
    #: low-precision trace), written beside the output by the fused
    #: kernel; None: the output alone
    spike_codes = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if 'rule' in vars(cls):
            cls.rule = as_rule(cls.rule)
            _CLASSES.setdefault(cls.rule.name, cls)

    def __init__(self, theta=1.0, bits: int = None, inplace: bool = False):
        super().__init__()
        self.inplace = bool(inplace)
        if not isinstance(theta, torch.Tensor):
            theta = torch.tensor([float(theta)])
        self.register_buffer('theta', theta.detach().reshape(1).clone())
        self.bits = bits
        #: the run presenting steps now (set by the runner), else None
        self.timestep_run = None

    @classmethod
    def from_quant_relu(cls, qrelu):
        return cls(theta=threshold_from_alpha(qrelu.alpha), bits=qrelu.bits,
                   inplace=getattr(qrelu, 'inplace', False))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a QANN checkpoint stores the threshold as its QuantReLU's alpha
        alpha = state_dict.pop(prefix + 'alpha', None)
        if alpha is not None and prefix + 'theta' not in state_dict:
            state_dict[prefix + 'theta'] = threshold_from_alpha(alpha)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def states(self):
        """(membrane, count) per call site this run, [] outside a run."""
        run = self.timestep_run
        return [] if run is None else run.states_of(self)

    def forward(self, x):
        run = self.timestep_run
        if run is None:
            raise RuntimeError(
                f'{type(self).__name__} called outside a timestep runner: '
                'use the converted model (convert_to_snn) to run it')
        owed = deferred_bn.take(x)  # a BN before it left its work here
        steps, constant = run.view(x)  # the run's steps and batch
        # a no-op once the model was moved with .to(); no host sync
        theta = self.theta.to(device=x.device, dtype=x.dtype)
        if owed is not None and not self._kernel_takes(owed, x, steps,
                                                       constant, theta,
                                                       run.fresh):
            owed.run(x)  # in place, before anything reads x
            owed = None
        bn = None if owed is None else owed.kernel_args()
        inplace = self._write_over_input()
        codes = self.spike_codes
        if codes is not None:  # read by a conv in a low precision
            steps = channels_last_for_convs(steps, constant)
        if run.fresh:  # the whole run in this call
            out = if_folded(steps, theta, self.rule, constant,
                            run.timesteps, inplace, codes, bn)
        else:  # state carries over to the next call (streaming, chunks)
            v, count = run.state(self, steps if constant else steps[0],
                                 theta)
            out = if_stateful(v, count, steps, theta, self.rule, constant,
                              run.steps, inplace, codes, bn)
        folded = fold_time(out)
        values = None if codes is None else codes_of(out, codes)
        return folded if values is None else \
            attach(folded, codes, fold_time(values))

    def _kernel_takes(self, owed, x, steps, constant, theta, fresh):
        """Whether the C kernel applies the BN (and residual) left to this
        call (:mod:`.deferred_bn`): steps that vary, the C update, and a
        residual only in a whole-run call on steps laid out one after
        another, as the residual is."""
        if constant or backend_for(steps, theta, rule=self.rule) != 'c':
            return False
        res = owed.residual
        return res is None or (fresh and step_major(steps)
                               and res.stride() == x.stride())

    def _write_over_input(self) -> bool:
        # a hook may read the input after forward (statistics, fine-tuning)
        return self.inplace and not (
            self._forward_hooks or self._forward_pre_hooks
            or nn.modules.module._global_forward_hooks)

    @property
    def signed(self) -> bool:
        """True for the signed rule (kept for older callers: read
        ``rule``, which also names rules other than these two)."""
        return isinstance(self.rule, SignedIF)

    def extra_repr(self):
        theta = 'meta' if self.theta.is_meta else f'{self.theta.item():.4g}'
        return f'theta={theta}, bits={self.bits}, rule={self.rule.name}'


class SignedIFNeuron(IFNeuron):
    """IF neuron with negative spikes that removes the sequential error."""

    rule = SignedIF


_CLASSES[IFNeuron.rule.name] = IFNeuron


def neuron_class(rule):
    """The neuron class of a registered rule (a rule, its class or its
    name): the one declared for it, else an :class:`IFNeuron` subclass made
    once (named after the rule, e.g. 'reset_zero' -> ResetZeroNeuron, and
    reachable from this module so that a pickled model loads again)."""
    rule = as_rule(rule)
    cls = _CLASSES.get(rule.name)
    if cls is None or cls.rule is not rule:  # new, or the rule replaced
        words = re.findall(r'[0-9A-Za-z]+', rule.name)
        name = ''.join(w[:1].upper() + w[1:] for w in words) + 'Neuron'
        cls = type(name, (IFNeuron, ), dict(
            rule=rule, generated=True, __module__=__name__,
            __doc__=f'IF neuron following the {rule.name!r} rule '
                    f'({type(rule).__name__}).'))
        _CLASSES[rule.name] = cls
        module = sys.modules[__name__]
        taken = getattr(module, name, None)
        if taken is None or getattr(taken, 'generated', False):
            setattr(module, name, cls)  # never over a declared name
    return cls


class _NeuronTable(Mapping):
    """Rule name -> neuron class, read from the rule registry
    (:data:`rules.NEURON_RULES`) at every lookup, so a rule registered
    later has its neurons at once."""

    def __getitem__(self, name):
        if name not in NEURON_RULES:
            raise KeyError(name)
        return neuron_class(NEURON_RULES[name])

    def __iter__(self):
        return iter(NEURON_RULES)

    def __len__(self):
        return len(NEURON_RULES)

    def __repr__(self):
        return repr(dict(self))


MODELS.register_module(module=IFNeuron)
MODELS.register_module(module=SignedIFNeuron)
#: rule name -> neuron class, for every registered rule ('signed' ->
#: SignedIFNeuron, 'unsigned' -> IFNeuron, ...)
NEURONS = _NeuronTable()
