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
    and one ``dict(model='QANN', **m)``.
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


def _bars(stats_by_neuron, key, ylabel, title, path, ideal=None):
    """Grouped bars of ``key`` per layer, one group member per neuron type."""
    neurons = list(stats_by_neuron)
    layers = [r['layer'] for r in stats_by_neuron[neurons[0]]['layers']]
    x = np.arange(len(layers))
    width = 0.8 / len(neurons)
    fig, ax = _figure(max(7.0, 0.35 * len(layers) + 2), 4.5)
    for i, neuron in enumerate(neurons):
        by_layer = {r['layer']: r[key]
                    for r in stats_by_neuron[neuron]['layers']}
        ax.bar(x + (i - (len(neurons) - 1) / 2) * width,
               [by_layer.get(n, 0.0) for n in layers], width, label=neuron)
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
    """Firing rate (mean |spikes| per neuron per step) per neuron layer."""
    return _bars(stats_by_neuron, 'firing_rate', 'firing rate',
                 'firing rate per layer', path, ideal='qann_rate')


def plot_mismatch(stats_by_neuron, path):
    """Fraction of neurons whose spike count misses the QANN level."""
    return _bars(stats_by_neuron, 'mismatch', 'fraction of neurons',
                 'spike count != QANN level, per layer', path)
