"""Per-layer spike statistics of a converted SNN against its QANN.

Each neuron layer's spikes are compared with the QuantReLU it replaced: an
exact conversion gives a net spike count of round(q * T / theta) per neuron
(q the QANN activation), which is the QANN level when T = 2^b - 1. Where the
count differs, sequential (or clipping) error has crept in; the signed
neuron should remove most of it.

Churn: a signed neuron that fires +1 at one step and -1 at another has
spent two spikes on a net count of zero. Per neuron the spikes that cancel
form min(#pos, #neg) pairs, and |spikes| = |net count| + 2 * pairs, so a
layer's firing rate splits exactly into the rate its net counts need and
the churn rate 2 * pairs / T. A layer fed by spikes pays a SynOp for every
one of them; ``churn_rate`` of a weighted layer's input says how many of
its input events were such cancelling pairs (see ``energy.py``).

Both nets are observed with forward hooks while their spiking path runs;
the SNN in folded mode, so a neuron's output is [T*B, ...]. A module called
at several places (mm blocks may reuse one activation) is one layer per call
site: ``name``, ``name#2``, ...
"""
from contextlib import contextmanager

import torch
from torch import nn

from ..quantization import QuantReLU
from ..spiking import IFNeuron, SpikingNetwork, neurons_of
from ..spiking.functional import qann_level
from ..spiking.run_state import TimestepRun, timestep_run
from ..utils.modules import eval_mode, forward_hooks

#: layers whose work counts as synaptic operations
WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def path_of(model):
    """(module holding the layers, callable mapping inputs to outputs)."""
    if hasattr(model, 'spiking_path'):
        return model, model.spiking_path
    if isinstance(model, SpikingNetwork):
        return model.module, model.module
    if isinstance(model, nn.Module):
        return model, model
    raise TypeError(f'expected an nn.Module, got {type(model).__name__}')


def default_timesteps(snn) -> int:
    """The T a converted model runs with (its config, else 2^b - 1)."""
    cfg = getattr(snn, 'snn_cfg', None)
    if cfg:
        return cfg['timesteps']
    if isinstance(snn, SpikingNetwork):
        return snn.timesteps
    neurons = neurons_of(snn)
    if not neurons:
        raise ValueError('the model has no spiking neurons: convert it first '
                         '(convert_to_snn or model.to_snn)')
    bits = [n.bits for n in neurons if n.bits]
    if not bits:
        raise ValueError('no neuron knows the bits of its QuantReLU: pass '
                         'timesteps= (T) explicitly')
    return 2 ** max(bits) - 1


class _CallSites:
    """Names each call of a module: ``name`` first, then ``name#2``, ..."""

    def __init__(self):
        self.calls = {}

    def __call__(self, name):
        k = self.calls.get(name, 0) + 1
        self.calls[name] = k
        return name if k == 1 else f'{name}#{k}'


@contextmanager
def _hooks(root, types, fn):
    """Call ``fn(name, module, inputs, output)`` after each matching module."""
    names = {m: name for name, m in root.named_modules()
             if isinstance(m, types)}

    def make_hook(m):
        return lambda mod, inp, out: fn(names[m], mod, inp, out)
    with forward_hooks(names, make_hook):
        yield


def _qann_activations(qann, x):
    """QuantReLU outputs of one batch: {site: (output, alpha)}."""
    root, path = path_of(qann)
    site, acts = _CallSites(), {}

    def keep(name, mod, inp, out):
        acts[site(name)] = out.detach()

    with torch.no_grad(), _hooks(root, QuantReLU, keep):
        path(x)
    return acts


def _new_row(site, mod, per_image):
    return dict(layer=site, type=type(mod).__name__,
                theta=float(mod.theta.item()), neurons=per_image,
                _n=0, _abs=0.0, _pos=0.0, _neg=0.0, _pairs=0.0, _miss=0,
                _inherited=0, _timing=0, _err=0.0, _level=0.0)


def summed_input_count(inp, theta, T, B):
    """The count an exact neuron would make of its input over T steps:
    clamp(round(S), 0, T), S the summed input in units of theta, per image
    [B, n]. ``inp`` is [T*B, ...] (one input per step) or [B, ...] (the
    same input at every step), as a folded run of T steps and batch B
    reads it."""
    return _summed_count(TimestepRun(T, B, 'folded'), inp, theta)


def _summed_count(run, inp, theta):
    T, B = run.timesteps, run.batch_size
    steps, constant = run.view(inp.detach())
    summed = T * steps if constant else steps.sum(0)
    return torch.clamp(torch.floor(summed / theta + 0.5), 0, T).reshape(B, -1)


def cancelling_pairs(spikes):
    """+1/-1 pairs per element of ``spikes`` [T, ...]: min(#pos, #neg)."""
    pos = (spikes > 0).sum(0)
    neg = (spikes < 0).sum(0)
    return torch.minimum(pos, neg)


def _snn_pass(snn, x, T, acts, rows, feeds):
    """Run the SNN once, folding its spikes into ``rows`` and recording which
    neuron layer feeds each weighted layer into ``feeds``."""
    root, path = path_of(snn)
    B = x.shape[0]
    site, wsite = _CallSites(), _CallSites()
    last = [None]  # most recent neuron call site

    def on_neuron(name, mod, inp, out):
        key = site(name)
        last[0] = key
        if key not in acts:
            raise ValueError(
                f'layer {key} of the SNN has no QuantReLU at the same place '
                'in the QANN: compare a model with its own conversion')
        theta = mod.theta.to(out.dtype)
        s = torch.round(out.detach() / theta).reshape(T, B, -1)
        q = acts[key].reshape(B, -1).to(out.dtype)
        level = qann_level(q, theta, T)
        count = s.sum(0)
        exact = _summed_count(run, inp[0], theta)
        missed = count != level
        row = rows.get(key) or rows.setdefault(
            key, _new_row(key, mod, q.shape[1]))
        row['_n'] += q.numel()
        row['_abs'] += s.abs().sum().item()
        row['_pos'] += (s > 0).sum().item()
        row['_neg'] += (s < 0).sum().item()
        row['_pairs'] += cancelling_pairs(s).sum().item()
        row['_miss'] += missed.sum().item()
        row['_inherited'] += (missed & (exact != level)).sum().item()
        row['_timing'] += (missed & (exact == level)).sum().item()
        row['_err'] += (count - level).abs().sum().item()
        row['_level'] += level.sum().item()

    def on_weighted(name, mod, inp, out):
        key = wsite(name)
        if key not in feeds:
            # MACs of one image and one step: outputs x weights per output
            feeds[key] = dict(layer=name, site=key, fed_by=last[0],
                              macs=out[0].numel() * mod.weight[0].numel(),
                              _events=0, _inputs=0, _churn=0)
        # input events (non-zero inputs per element and step), measured on
        # the layer's own input: exact for concat / sums of branches too
        x = inp[0]
        feeds[key]['_events'] += int(torch.count_nonzero(x))
        feeds[key]['_inputs'] += x.numel()
        steps = run.steps_of(x)  # None: the same input at every step
        if last[0] is not None and steps is not None:
            # events that are halves of a +1/-1 pair at the same input
            pairs = cancelling_pairs(steps.detach().reshape(T, B, -1))
            feeds[key]['_churn'] += 2 * int(pairs.sum())

    with torch.no_grad(), timestep_run(snn, T, B, 'folded') as run, \
            _hooks(root, IFNeuron, on_neuron), \
            _hooks(root, WEIGHTED, on_weighted):
        path(x)


def _finish(row, T):
    n = max(row['_n'], 1)
    steps = n * T
    out = {k: v for k, v in row.items() if not k.startswith('_')}
    out.update(
        firing_rate=row['_abs'] / steps,
        pos_rate=row['_pos'] / steps,
        neg_rate=row['_neg'] / steps,
        # +1/-1 pairs per neuron over the T steps, the rate of spikes they
        # spend, and their share of all spikes
        cancel_pairs=row['_pairs'] / n,
        churn_rate=2 * row['_pairs'] / steps,
        churn_share=2 * row['_pairs'] / max(row['_abs'], 1),
        # the rate an exact conversion would show (net spikes per step)
        qann_rate=row['_level'] / steps,
        mismatch=row['_miss'] / n,
        # the two origins of a miss (module docstring); they sum to mismatch
        inherited_mismatch=row['_inherited'] / n,
        timing_mismatch=row['_timing'] / n,
        count_error=row['_err'] / n)
    return out


def collect_layer_stats(qann, snn, batches, timesteps=None):
    """Spike statistics of ``snn`` per neuron layer against ``qann``.

    Args:
        qann: the quantized model (QuantReLUs); both run in eval mode.
        snn: its conversion (same module paths, neurons for QuantReLUs).
        batches: input tensors for the spiking path (preprocessed images).
        timesteps: T to run; default the SNN's own (2^b - 1 unless set).

    Returns:
        dict with ``timesteps``; ``layers``: one row per neuron call site in
        execution order (firing_rate = mean |spikes| per neuron per step,
        pos_rate / neg_rate, qann_rate, cancel_pairs = mean +1/-1 pairs per
        neuron, churn_rate = 2 * pairs / T, the part of firing_rate spent on
        spikes that cancel, churn_share = churn_rate / firing_rate,
        mismatch = fraction of neurons whose
        net count differs from round(q * T / theta), split into
        inherited_mismatch (the summed input already asked for another
        count) and timing_mismatch (it asked for the QANN level; the
        layer's own sequential error), count_error = mean
        |count - that level|); ``feeds``: one row per weighted-layer call
        with the most recent neuron layer before it (None: fed by the analog
        image), its MACs per image and step, ``input_rate``, the
        measured fraction of its inputs that carry a spike per step, and
        ``churn_rate``, the fraction that are halves of +1/-1 pairs.
    """
    T = timesteps or default_timesteps(snn)
    rows, feeds = {}, {}
    with eval_mode(qann, snn):
        for x in batches:
            if not isinstance(x, torch.Tensor):
                raise TypeError('batches must hold input tensors, got '
                                f'{type(x).__name__}')
            acts = _qann_activations(qann, x)
            _snn_pass(snn, x, T, acts, rows, feeds)
    if not rows:
        raise ValueError('no neuron layer ran: is the model converted and '
                         'are there any batches?')
    return dict(timesteps=T, layers=[_finish(r, T) for r in rows.values()],
                feeds=[_finish_feed(f) for f in feeds.values()])


def _finish_feed(feed):
    out = {k: v for k, v in feed.items() if not k.startswith('_')}
    out['input_rate'] = feed['_events'] / max(feed['_inputs'], 1)
    out['churn_rate'] = feed['_churn'] / max(feed['_inputs'], 1)
    return out
