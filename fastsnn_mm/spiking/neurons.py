"""Integrate-and-fire neurons that replace QuantReLU in the converted SNN.

A neuron keeps a membrane potential V (start theta/2), integrates its input
each step, fires +1 when V >= theta and subtracts theta (reset by
subtraction). The signed neuron also fires -1 (and adds theta back) when V
drops below zero while its net spike count is positive: this undoes spikes
that early inputs caused but later negative inputs cancelled (the
*sequential error*), so the count equals the QANN level. Output per step is
spike * theta, so the time average equals the QANN activation.

Two execution modes give the same spikes:
  * folded: time is folded into the batch axis. The neuron sees [T*B, ...]
    (or [B, ...] when its input is the same at every step, i.e. the layers
    before the first neuron ran only once) and loops over T itself.
  * streaming: the network is called once per step; the neuron keeps V and
    its count between calls. Memory does not grow with T.
  * folded in time chunks: each call presents a chunk of S < T steps folded
    into the batch, state carried over as in streaming; memory grows with
    S, not T.
The update itself runs in the compiled kernel (``kernel.py``) when it can,
else in the reference loop below; both give the same bits.
"""
import torch
from torch import nn

from ..registry import MODELS
from . import kernel

#: A membrane this far below zero counts as negative (absorbs float noise).
NEG_EPS = 1e-6


def count_dtype(timesteps: int):
    """A neuron fires at most once a step, so |count| <= T: int8 holds it for
    T <= 127 at a quarter of float's memory, which matters in streaming
    mode, where every neuron keeps its state for the whole run."""
    return torch.int8 if timesteps <= 127 else torch.int32


def new_state(like, theta, signed: bool, timesteps: int):
    """Membrane at theta/2 and, for the signed rule, a net spike count."""
    v = torch.full(like.shape, 0.5, dtype=like.dtype,
                   device=like.device).mul_(theta)
    count = torch.zeros(like.shape, dtype=count_dtype(timesteps),
                        device=like.device) if signed else None
    return v, count


def if_step(v, count, x, theta, signed: bool):
    """One in-place IF update; returns the signed spike tensor (+1/0/-1)."""
    v.add_(x)
    pos = v >= theta
    v.sub_(pos * theta)
    if not signed:
        return pos.to(v.dtype)
    # only the signed rule needs the net count
    neg = (v < -NEG_EPS * theta) & (count > 0)
    v.add_(neg * theta)
    count.add_(pos).add_(neg, alpha=-1)
    return pos.to(v.dtype) - neg.to(v.dtype)


def if_loop(x_steps, theta, signed: bool, constant: bool, timesteps: int):
    """Reference T-step loop. ``x_steps`` is [T, ...] or, if ``constant``,
    one step's input [...] repeated T times. Returns spikes [T, ...]."""
    shape = x_steps.shape if constant else x_steps.shape[1:]
    v, count = new_state(x_steps.new_empty(shape), theta, signed, timesteps)
    out = x_steps.new_empty((timesteps, *shape))
    for t in range(timesteps):
        out[t] = if_step(v, count, x_steps if constant else x_steps[t],
                         theta, signed)
    return out


class IFNeuron(nn.Module):
    """Unsigned integrate-and-fire neuron (the comparison baseline)."""

    signed = False

    def __init__(self, theta: float = 1.0, timesteps: int = 1,
                 bits: int = None, inplace: bool = False):
        super().__init__()
        #: may write spikes over the input (QuantReLU's ``inplace``)
        self.inplace = bool(inplace)
        self.register_buffer('theta', torch.tensor([float(theta)]))
        #: bits of the QuantReLU this neuron replaced (decides default T)
        self.bits = bits
        self.timesteps = int(timesteps)
        self.mode = 'folded'
        self.batch_size = None  # set by the runner in folded mode
        self.step_bytes = 0  # size of one step's input (last call)
        self.reset()

    @classmethod
    def from_quant_relu(cls, qrelu, timesteps: int):
        theta = qrelu.alpha.detach().abs().clamp_min(1e-8).item()
        return cls(theta=theta, timesteps=timesteps, bits=qrelu.bits,
                   inplace=getattr(qrelu, 'inplace', False))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a QANN checkpoint stores the threshold as its QuantReLU's alpha
        alpha = state_dict.pop(prefix + 'alpha', None)
        if alpha is not None and prefix + 'theta' not in state_dict:
            state_dict[prefix + 'theta'] = alpha.abs().clamp_min(1e-8).reshape(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reset(self):
        """Forget the membrane state; the runner calls this per batch."""
        self.states = []  # one (v, count) per call site of this module
        self.steps = self.timesteps if self.mode == 'folded' else 1
        self.begin_step()

    def begin_step(self, steps: int = None):
        """A new call of the network starts, presenting ``steps`` time steps
        (streaming: 1; folded: all T, or a chunk of them)."""
        self.calls = 0
        if steps is not None:
            self.steps = steps

    def forward(self, x):
        theta = self.theta.to(x.dtype)
        S, B = self.steps, self.batch_size
        if B is None:
            raise RuntimeError(
                f'{type(self).__name__} called outside a timestep runner: '
                'use the converted model (convert_to_snn) to run it')
        if x.shape[0] == S * B and S > 1:
            steps, constant = x.reshape(S, B, *x.shape[1:]), False
        elif x.shape[0] == B:
            # time-invariant input: the layers before ran once, not S times
            steps, constant = x, True
        else:
            raise RuntimeError(
                f'{type(self).__name__}: batch {x.shape[0]} is neither B={B} '
                f'nor {S} steps x B={S * B}')
        step_shape = x.shape if constant else steps.shape[1:]
        self.step_bytes = step_shape.numel() * x.element_size()
        if S == self.timesteps:  # the whole run in this call: fresh state
            out = self._run_fresh(steps, theta, constant)
        else:  # state carries over to the next call (streaming, chunks)
            out = self._run_stateful(steps, theta, constant, step_shape)
        return out.reshape(S * B, *x.shape[1:])

    @property
    def count_bytes(self) -> int:
        """Bytes per value of the net count the signed rule keeps."""
        return count_dtype(self.timesteps).itemsize

    def _write_over_input(self) -> bool:
        # a hook may read the input after forward (statistics, fine-tuning)
        return self.inplace and not (
            self._forward_hooks or self._forward_pre_hooks
            or nn.modules.module._global_forward_hooks)

    def _run_fresh(self, steps, theta, constant):
        T = self.timesteps
        if kernel.usable(steps, theta):
            return kernel.if_folded(steps, theta, self.signed, constant, T,
                                    NEG_EPS, self._write_over_input())
        return if_loop(steps, theta, self.signed, constant, T) * theta

    def _run_stateful(self, steps, theta, constant, step_shape):
        # an mm block may call one activation module at several places;
        # each call site is its own neuron layer with its own state
        if self.calls == len(self.states):
            like = steps if constant else steps[0]
            self.states.append(new_state(like, theta, self.signed,
                                         self.timesteps))
        v, count = self.states[self.calls]
        self.calls += 1
        S = self.steps
        if kernel.usable(steps, v, theta):
            return kernel.if_stateful(v, count, steps, theta, self.signed,
                                      constant, S, NEG_EPS,
                                      self._write_over_input())
        out = steps.new_empty((S, *step_shape))
        for t in range(S):
            out[t] = if_step(v, count, steps if constant else steps[t],
                             theta, self.signed) * theta
        return out

    def extra_repr(self):
        return (f'theta={self.theta.item():.4g}, timesteps={self.timesteps}, '
                f'signed={self.signed}')


class SignedIFNeuron(IFNeuron):
    """IF neuron with negative spikes that removes the sequential error."""

    signed = True


MODELS.register_module(module=IFNeuron)
MODELS.register_module(module=SignedIFNeuron)
NEURONS = {'signed': SignedIFNeuron, 'unsigned': IFNeuron}
