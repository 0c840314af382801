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
import torch
from torch import nn

from ..registry import MODELS
from .functional import fold_time, if_folded, if_stateful

__all__ = ['IFNeuron', 'SignedIFNeuron', 'NEURONS', 'threshold_from_alpha']


def threshold_from_alpha(alpha) -> torch.Tensor:
    """theta = |alpha| (at least 1e-8), a detached 1-element tensor on
    alpha's device and in its dtype: no host round trip."""
    return alpha.detach().abs().clamp_min(1e-8).reshape(1).clone()


class IFNeuron(nn.Module):
    """Unsigned integrate-and-fire neuron (the comparison baseline).

    Args:
        theta (float | Tensor): threshold; a tensor keeps its device and
            dtype. Defaults to 1.0.
        timesteps (int): the T it was converted for (2^b - 1 by default);
            a run presents its own T. Defaults to 1.
        bits (int | None): bits of the QuantReLU it replaced.
        inplace (bool): may write spikes over its input (QuantReLU's
            ``inplace``). Defaults to False.
    """

    signed = False

    def __init__(self, theta=1.0, timesteps: int = 1, bits: int = None,
                 inplace: bool = False):
        super().__init__()
        self.inplace = bool(inplace)
        if not isinstance(theta, torch.Tensor):
            theta = torch.tensor([float(theta)])
        self.register_buffer('theta', theta.detach().reshape(1).clone())
        self.bits = bits
        self.timesteps = int(timesteps)
        #: the run presenting steps now (set by the runner), else None
        self.timestep_run = None

    @classmethod
    def from_quant_relu(cls, qrelu, timesteps: int):
        return cls(theta=threshold_from_alpha(qrelu.alpha),
                   timesteps=timesteps, bits=qrelu.bits,
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
        steps, constant = run.view(x)  # the run's steps and batch
        # a no-op once the model was moved with .to(); no host sync
        theta = self.theta.to(device=x.device, dtype=x.dtype)
        inplace = self._write_over_input()
        if run.fresh:  # the whole run in this call
            out = if_folded(steps, theta, self.signed, constant,
                            run.timesteps, inplace)
        else:  # state carries over to the next call (streaming, chunks)
            v, count = run.state(self, steps if constant else steps[0],
                                 theta)
            out = if_stateful(v, count, steps, theta, self.signed, constant,
                              run.steps, inplace)
        return fold_time(out)

    def _write_over_input(self) -> bool:
        # a hook may read the input after forward (statistics, fine-tuning)
        return self.inplace and not (
            self._forward_hooks or self._forward_pre_hooks
            or nn.modules.module._global_forward_hooks)

    def extra_repr(self):
        theta = 'meta' if self.theta.is_meta else f'{self.theta.item():.4g}'
        return (f'theta={theta}, timesteps={self.timesteps}, '
                f'signed={self.signed}')


class SignedIFNeuron(IFNeuron):
    """IF neuron with negative spikes that removes the sequential error."""

    signed = True


MODELS.register_module(module=IFNeuron)
MODELS.register_module(module=SignedIFNeuron)
NEURONS = {'signed': SignedIFNeuron, 'unsigned': IFNeuron}
