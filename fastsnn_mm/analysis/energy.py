"""Synaptic operations and energy of a converted SNN against its QANN.

The QANN does every conv/linear layer's MACs once per image. In the SNN a
layer fed by spikes only adds a weight when an input neuron spikes, so its
work is MACs x (spikes per input neuron per image over the T steps) =
MACs x firing rate x T, negative spikes included. Layers fed by the analog
image (before the first neuron) run once and stay MACs: their output is the
same at every step, so the first neurons reuse that charge.

The spike rate of a layer's input is measured on that input itself (the
fraction of non-zero inputs per step), so a layer reading a concat or sum
of several branches (ASPP, FPN laterals, shortcut convs) is counted from
what it actually receives. A layer counts as image-fed when no neuron layer
ran before it.

Churn: with the signed neuron some input events are +1/-1 pairs that
cancel at the same input (see ``layer_stats.py``). They cost SynOps like
any spike; ``churn_synops`` counts them from the measured churn rate of
each layer's input, so ``churn_share`` of the total says what the signed
rule's corrections cost in synaptic operations (and in energy).

Energy uses the usual 45 nm CMOS figures (32-bit float, Horowitz 2014):
E_MAC = 4.6 pJ (multiply 3.7 + add 0.9) and E_AC = 0.9 pJ (add only).
"""
import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn

from ..utils.modules import eval_mode
from .layer_stats import WEIGHTED, path_of

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


class _Path(nn.Module):
    """Makes a model's spiking path the ``forward`` the analyzer traces."""

    def __init__(self, root, fn):
        super().__init__()
        self.m = root
        self._fn = None if fn is root else fn  # not a second submodule

    def forward(self, x):
        return self.m(x) if self._fn is None else self._fn(x)


def layer_macs(model, inputs):
    """MACs of one image per conv/linear layer on the spiking path, from
    mmengine's FlopAnalyzer (one flop per MAC). Returns {name: MACs}, or
    None when the path cannot be traced (callers then count from shapes)."""
    root, fn = path_of(model)
    try:
        with eval_mode(root), torch.no_grad():
            analyzer = FlopAnalyzer(_Path(root, fn), (inputs[:1], ))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            analyzer.tracer_warnings('none')
            by_module = analyzer.by_module()
    except Exception:  # tracing is best effort; shapes give the same counts
        return None
    return {name: int(by_module.get('m.' + name, 0))
            for name, m in root.named_modules() if isinstance(m, WEIGHTED)}


def synops_table(stats, macs=None, e_mac=E_MAC_PJ, e_ac=E_AC_PJ):
    """SynOps and energy per weighted layer.

    Args:
        stats: :func:`collect_layer_stats` output (rates, T, feeds).
        macs: {layer: MACs per image} (e.g. :func:`layer_macs`); layers it
            lacks are counted from their output and weight shapes.
        e_mac, e_ac: energy of one MAC / one accumulate, in pJ.

    Returns:
        dict with ``layers`` (one row per weighted layer, execution order)
        and ``total``; energies in microjoules per image. ``churn_synops``
        (and ``churn_share``, ``churn_energy_uj``) are the part of the
        SynOps spent on +1/-1 pairs that cancel.
    """
    T = stats['timesteps']
    rate = {r['layer']: r['firing_rate'] for r in stats['layers']}
    shape_macs = {}
    for f in stats['feeds']:
        shape_macs[f['layer']] = shape_macs.get(f['layer'], 0) + f['macs']
    rows = {}
    for f in stats['feeds']:
        name = f['layer']
        known = (macs or {}).get(name) or 0
        # a layer called at several sites: split its MACs by call size
        share = known * f['macs'] / shape_macs[name] if known else f['macs']
        row = rows.setdefault(name, dict(layer=name, fed_by=[], macs=0.0,
                                         analog_macs=0.0, synops=0.0,
                                         churn_synops=0.0))
        row['macs'] += share
        if f['fed_by'] is None:
            row['analog_macs'] += share
            row['fed_by'].append('image')
        else:
            in_rate = f.get('input_rate', rate.get(f['fed_by'], 0.0))
            row['synops'] += share * in_rate * T
            row['churn_synops'] += share * f.get('churn_rate', 0.0) * T
            row['fed_by'].append(f['fed_by'])
    for row in rows.values():
        row['fed_by'] = ', '.join(dict.fromkeys(row['fed_by']))
        _energy(row, e_mac, e_ac)
    total = dict(macs=0.0, analog_macs=0.0, synops=0.0, churn_synops=0.0)
    for row in rows.values():
        for k in total:
            total[k] += row[k]
    _energy(total, e_mac, e_ac)
    total.update(timesteps=T, e_mac_pj=e_mac, e_ac_pj=e_ac,
                 energy_ratio=total['ann_energy_uj'] /
                 max(total['snn_energy_uj'], 1e-30),
                 macs_source='FlopAnalyzer' if macs else 'layer shapes')
    return dict(layers=list(rows.values()), total=total)


def _energy(row, e_mac, e_ac):
    row['churn_share'] = row['churn_synops'] / max(row['synops'], 1e-30)
    row['ann_energy_uj'] = row['macs'] * e_mac * 1e-6
    row['snn_energy_uj'] = (row['analog_macs'] * e_mac +
                            row['synops'] * e_ac) * 1e-6
    row['churn_energy_uj'] = row['churn_synops'] * e_ac * 1e-6
