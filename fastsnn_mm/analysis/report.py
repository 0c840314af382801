"""Write an SNN report (markdown, JSON and PNG plots) to one folder.

Markdown for people, JSON with the same numbers for scripts; both written
from the results the caller gathered (metrics, layer stats, SynOps).
"""
import json
import numbers
import os
import re

from .plots import (
    plot_energy,
    plot_firing_rates,
    plot_metric_vs_timesteps,
    plot_mismatch,
    plot_synops,
)


def _is_number(v) -> bool:
    # numpy scalars too: mmseg's IoUMetric reports np.float32
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _fmt(v):
    if _is_number(v) and not isinstance(v, numbers.Integral):
        return f'{float(v):.4g}'
    return '-' if v is None else str(v)


def md_table(header, rows):
    """A markdown table; floats shown with 4 significant digits."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(_fmt(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def metric_keys(results):
    """Metric names (numeric entries other than model / neuron / T)."""
    keys = dict.fromkeys(k for r in results for k, v in r.items()
                         if k not in ('model', 'neuron', 'T')
                         and _is_number(v))
    return list(keys)


def _metrics_md(results):
    keys = metric_keys(results)
    rows = [[r['model'], r.get('neuron', '-'), r.get('T', '-')] +
            [r.get(k) for k in keys] for r in results]
    return md_table(['model', 'neuron', 'T'] + keys, rows)


def _layers_md(stats_by_neuron):
    neurons = list(stats_by_neuron)
    first = stats_by_neuron[neurons[0]]['layers']
    by = {n: {r['layer']: r for r in stats_by_neuron[n]['layers']}
          for n in neurons}
    header = ['layer', 'theta', 'neurons', 'QANN rate']
    for n in neurons:
        header += [f'{n} rate', f'{n} +', f'{n} -', f'{n} pairs',
                   f'{n} churn', f'{n} mismatch', f'{n} inherited',
                   f'{n} timing']
    rows = []
    for r in first:
        row = [r['layer'], r['theta'], r['neurons'], r['qann_rate']]
        for n in neurons:
            s = by[n].get(r['layer'], {})
            row += [s.get('firing_rate'), s.get('pos_rate'),
                    s.get('neg_rate'), s.get('cancel_pairs'),
                    s.get('churn_rate'), s.get('mismatch'),
                    s.get('inherited_mismatch'), s.get('timing_mismatch')]
        rows.append(row)
    text = md_table(header, rows)
    if {'signed', 'unsigned'} <= set(neurons):
        ok = sum(by['signed'][r['layer']]['mismatch'] <=
                 by['unsigned'][r['layer']]['mismatch'] for r in first)
        text += (f'\n\nSigned mismatch <= unsigned on {ok}/{len(first)} '
                 'layers.')
    for n in neurons:
        layers = stats_by_neuron[n]['layers']
        mean = sum(r['mismatch'] for r in layers) / len(layers)
        exact = sum(r['mismatch'] == 0 for r in layers)
        text += (f'\n{n}: mean mismatch {mean:.4g}, {exact}/{len(layers)} '
                 'layers exact.')
        if all('inherited_mismatch' in r for r in layers) and mean > 0:
            inh = sum(r['inherited_mismatch'] for r in layers) / len(layers)
            text += (f' Of the misses {100 * inh / mean:.0f}% are inherited '
                     '(the summed input already asked for another count: '
                     'errors of earlier layers), the rest the layer\'s own '
                     'timing.')
    return text


def _synops_md(table):
    rows = [[r['layer'], r['fed_by'], r['macs'], r['synops'],
             r['churn_synops'], r['churn_share'], r['ann_energy_uj'],
             r['snn_energy_uj']] for r in table['layers']]
    t = table['total']
    rows.append(['**total**', '', t['macs'], t['synops'], t['churn_synops'],
                 t['churn_share'], t['ann_energy_uj'], t['snn_energy_uj']])
    text = md_table(['layer', 'fed by', 'MACs', 'SynOps (AC)',
                     'churn SynOps', 'churn share', 'QANN energy (uJ)',
                     'SNN energy (uJ)'], rows)
    return text + (
        f"\n\nT = {t['timesteps']}; MACs from {t['macs_source']}; "
        f"E_MAC = {t['e_mac_pj']} pJ, E_AC = {t['e_ac_pj']} pJ; layers fed "
        f"by the image are counted as MACs. QANN / SNN energy = "
        f"{t['energy_ratio']:.3g}x. Churn: SynOps spent on +1/-1 spike "
        f"pairs that cancel, {100 * t['churn_share']:.2f}% of all SynOps "
        f"({t['churn_energy_uj']:.4g} uJ).")


def _safe(name):
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', name)


def write_report(out_dir, results, stats_by_neuron, synops_by_neuron,
                 meta=None):
    """Write report.md, report.json and the PNG plots; returns their paths.

    Args:
        results: metric rows (QANN first, then one per SNN T and neuron).
        stats_by_neuron: {neuron: collect_layer_stats(...)}.
        synops_by_neuron: {neuron: synops_table(...)}.
        meta: extra facts for the header (config, checkpoint, ...).
    """
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(meta or {})
    plots = {}
    for key in metric_keys(results):
        plots[f'{key} vs T'] = plot_metric_vs_timesteps(
            results, key, os.path.join(out_dir, f'metric_{_safe(key)}.png'))
    if stats_by_neuron:
        plots['firing rate'] = plot_firing_rates(
            stats_by_neuron, os.path.join(out_dir, 'firing_rate.png'))
        plots['mismatch'] = plot_mismatch(
            stats_by_neuron, os.path.join(out_dir, 'mismatch.png'))
    if synops_by_neuron:
        plots['SynOps per layer'] = plot_synops(
            synops_by_neuron, os.path.join(out_dir, 'synops.png'))
        plots['energy'] = plot_energy(
            synops_by_neuron, os.path.join(out_dir, 'energy.png'))

    parts = ['# SNN report', '']
    parts += [f'- {k}: {v}' for k, v in meta.items()]
    parts += ['', '## QANN vs SNN', '', _metrics_md(results)]
    if stats_by_neuron:
        T = next(iter(stats_by_neuron.values()))['timesteps']
        parts += ['', f'## Per-layer spikes (T = {T})', '',
                  'rate: mean |spikes| per neuron per step (+ / -: positive '
                  '/ negative spikes); pairs: +1/-1 spike pairs that cancel, '
                  'per neuron over the T steps; churn: the rate spent on '
                  'them (2 x pairs / T); mismatch: fraction of neurons whose '
                  'net spike count differs from the QANN level.', '',
                  _layers_md(stats_by_neuron)]
    for neuron, table in synops_by_neuron.items():
        parts += ['', f'## Synaptic operations and energy ({neuron})', '',
                  _synops_md(table)]
    parts += ['', '## Plots', '']
    parts += [f'![{k}]({os.path.basename(p)})' for k, p in plots.items()]

    md_path = os.path.join(out_dir, 'report.md')
    with open(md_path, 'w') as f:
        f.write('\n'.join(parts) + '\n')
    json_path = os.path.join(out_dir, 'report.json')
    with open(json_path, 'w') as f:
        json.dump(dict(meta=meta, metrics=results,
                       layer_stats=stats_by_neuron,
                       synops=synops_by_neuron), f, indent=2, default=float)
    return dict(markdown=md_path, json=json_path, plots=list(plots.values()))
