"""PNG plots of an SNN report.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so they
work on headless machines and leave the caller's backend alone.
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(width=7.0, height=4.0):
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_metric_vs_timesteps(results, metric, path):
    """One line per neuron type (metric over T), the QANN as a flat line.

    ``results``: rows like ``dict(model='SNN', neuron='signed', T=7, **m)``
    and one ``dict(model='QANN', **m)``; rows of model 'SNN fine-tuned'
    are drawn as stars.
    """
    fig, ax = _figure()
    ts = sorted({r['T'] for r in results if r['model'] == 'SNN'})
    for neuron in dict.fromkeys(r['neuron'] for r in results
                                if r['model'] == 'SNN'):
        pts = sorted((r['T'], r[metric]) for r in results
                     if r['model'] == 'SNN' and r['neuron'] == neuron
                     and metric in r)
        if pts:
            ax.plot(*zip(*pts), marker='o', label=f'SNN ({neuron})')
    for r in results:
        if r['model'] == 'QANN' and metric in r:
            ax.axhline(r[metric], color='black', linestyle='--', label='QANN')
        elif r['model'] == 'SNN fine-tuned' and metric in r:
            ax.plot(r['T'], r[metric], marker='*', markersize=12,
                    linestyle='none', label=f"SNN ({r['neuron']}), fine-tuned")
    ax.set_xscale('log', base=2)
    if ts:
        ax.set_xticks(ts)
        ax.set_xticklabels([str(t) for t in ts])
        ax.minorticks_off()
    ax.set_xlabel('time steps T')
    ax.set_ylabel(metric)
    ax.set_title(f'{metric} vs T')
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _bars(stats_by_neuron, key, ylabel, title, path, ideal=None, part=None,
          part_label=''):
    """Grouped bars of ``key`` per layer, one group member per neuron type;
    ``part``: a key whose value is drawn hatched inside each bar (legend:
    ``part_label``)."""
    neurons = list(stats_by_neuron)
    layers = [r['layer'] for r in stats_by_neuron[neurons[0]]['layers']]
    x = np.arange(len(layers))
    width = 0.8 / len(neurons)
    fig, ax = _figure(max(7.0, 0.35 * len(layers) + 2), 4.5)
    for i, neuron in enumerate(neurons):
        by_layer = {r['layer']: r[key]
                    for r in stats_by_neuron[neuron]['layers']}
        pos = x + (i - (len(neurons) - 1) / 2) * width
        total = np.array([by_layer.get(n, 0.0) for n in layers])
        bars = ax.bar(pos, total, width, label=neuron)
        if part:
            inner = {r['layer']: r.get(part, 0.0)
                     for r in stats_by_neuron[neuron]['layers']}
            top = np.array([inner.get(n, 0.0) for n in layers])
            if top.any():  # the top of each bar, as in plot_synops
                ax.bar(pos, top, width, bottom=total - top,
                       color=bars.patches[0].get_facecolor(),
                       edgecolor='black', hatch='///', linewidth=0.3,
                       label=f'{neuron}: {part_label}')
    if ideal:
        rows = stats_by_neuron[neurons[0]]['layers']
        ax.plot(x, [r[ideal] for r in rows], 'k_', markersize=12,
                label='QANN level / T')
    ax.set_xticks(x)
    ax.set_xticklabels(layers, rotation=90, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def plot_firing_rates(stats_by_neuron, path):
    """Firing rate (mean |spikes| per neuron per step) per neuron layer,
    the part spent on +1/-1 pairs hatched."""
    return _bars(stats_by_neuron, 'firing_rate', 'firing rate',
                 'firing rate per layer (hatched: spikes that cancel)', path,
                 ideal='qann_rate', part='churn_rate',
                 part_label='+1/-1 pairs (churn)')


def plot_mismatch(stats_by_neuron, path):
    """Fraction of neurons whose spike count misses the QANN level, the
    part that is the layer's own timing error hatched (the rest came in
    with the input)."""
    return _bars(stats_by_neuron, 'mismatch', 'fraction of neurons',
                 'spike count != QANN level, per layer '
                 '(hatched: own timing error)', path, part='timing_mismatch',
                 part_label='own timing error')


def plot_synops(synops_by_neuron, path):
    """SynOps per weighted layer, one bar per neuron type, the SynOps spent
    on +1/-1 pairs (churn) stacked on top, hatched."""
    neurons = list(synops_by_neuron)
    rows0 = [r for r in synops_by_neuron[neurons[0]]['layers']
             if r['fed_by'] != 'image']
    layers = [r['layer'] for r in rows0]
    x = np.arange(len(layers))
    width = 0.8 / len(neurons)
    fig, ax = _figure(max(7.0, 0.35 * len(layers) + 2), 4.5)
    for i, neuron in enumerate(neurons):
        by = {r['layer']: r for r in synops_by_neuron[neuron]['layers']}
        churn = np.array([by[n]['churn_synops'] if n in by else 0.0
                          for n in layers])
        total = np.array([by[n]['synops'] if n in by else 0.0
                          for n in layers])
        pos = x + (i - (len(neurons) - 1) / 2) * width
        bars = ax.bar(pos, total - churn, width, label=f'{neuron}: net')
        if churn.any():
            ax.bar(pos, churn, width, bottom=total - churn,
                   color=bars.patches[0].get_facecolor(), edgecolor='black',
                   hatch='///', linewidth=0.3,
                   label=f'{neuron}: +1/-1 pairs (churn)')
    ax.set_xticks(x)
    ax.set_xticklabels(layers, rotation=90, fontsize=7)
    ax.set_ylabel('SynOps per image')
    ax.set_title('synaptic operations per layer (hatched: spikes that '
                 'cancel)')
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_energy(synops_by_neuron, path):
    """Energy per image: the QANN's MACs against each SNN's analog MACs,
    accumulates for net spikes and accumulates spent on +1/-1 pairs."""
    neurons = list(synops_by_neuron)
    t0 = synops_by_neuron[neurons[0]]['total']
    labels = ['QANN'] + [f'SNN {n}' for n in neurons]
    fig, ax = _figure(2.0 + 1.3 * len(labels), 4.0)
    ax.bar([0], [t0['ann_energy_uj']], 0.6, color='#777',
           label='QANN MACs')
    for i, neuron in enumerate(neurons, start=1):
        t = synops_by_neuron[neuron]['total']
        analog = t['analog_macs'] * t['e_mac_pj'] * 1e-6
        churn = t['churn_energy_uj']
        net = t['snn_energy_uj'] - analog - churn
        first = i == 1
        ax.bar([i], [analog], 0.6, color='#1f77b4',
               label='SNN: image-fed MACs' if first else None)
        ax.bar([i], [net], 0.6, bottom=[analog], color='#ff7f0e',
               label='SNN: ACs of net spikes' if first else None)
        ax.bar([i], [churn], 0.6, bottom=[analog + net], color='#d62728',
               hatch='///', edgecolor='black', linewidth=0.3,
               label='SNN: ACs of +1/-1 pairs' if first else None)
        share = t['churn_synops'] / max(t['synops'], 1e-30)
        ax.text(i, t['snn_energy_uj'], f'churn {100 * share:.1f}%',
                ha='center', va='bottom', fontsize=8)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_ylabel('energy per image (uJ)')
    ax.set_title(f"energy at T = {t0['timesteps']} (E_MAC {t0['e_mac_pj']} "
                 f"pJ, E_AC {t0['e_ac_pj']} pJ)")
    ax.legend(fontsize=8)
    return _save(fig, path)
