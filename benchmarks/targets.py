"""Which performance targets a benchmark run met, as one table.

``run_gpu.sh`` ends with this: it reads the runs recorded in results.json
since the script started (on its device kind) and checks each against the
targets of the GPU work (issue 18):

* SNN time: wall(SNN, default plan) / (T x wall(QANN)) <= 1.0 at every T;
* SNN memory: peak working memory of the default plan <= 1.5x the QANN's;
* neuron update: ours (signed and unsigned) faster than every SpikingJelly
  row at every T;
* QAT step: QuantReLU step <= 1.15x the ReLU step (plain and autocast);
* whole network against SpikingJelly: outputs equal, and ours not slower.

A target with no run to judge says so ("not measured"): a step that failed
or was left out shows up here as well as in the step summary.

    python benchmarks/targets.py --results work_dirs/gpu/RESULTS.md \\
        --since '2026-12-02 10:00 UTC' --device cuda
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import DEFAULT_MD, load  # noqa: E402

SNN_TIME_MAX = 1.0
MEMORY_MAX = 1.5
QAT_MAX = 1.15


def _float(cell):
    try:
        return float(str(cell).split()[0])
    except (ValueError, IndexError):
        return None


def _table(run):
    return [dict(zip(run['columns'], row)) for row in run['rows']]


def snn_time(run):
    """Default-plan rows of a plans table (GPU run, or ``--plans``)."""
    if 'plan' not in run['columns']:
        return []
    key = 'SNN / (T x QANN), median'
    return [(f"T={r['T']}, default plan", _float(r[key]),
             f'<= {SNN_TIME_MAX}', _float(r[key]) <= SNN_TIME_MAX)
            for r in _table(run) if r['plan'] == 'default plan'
            and _float(r[key]) is not None]


def snn_memory(run):
    if 'case' not in run['columns'] or 'working / QANN' not in \
            run['columns']:
        return []
    return [('default plan / QANN', _float(r['working / QANN']),
             f'<= {MEMORY_MAX}', _float(r['working / QANN']) <= MEMORY_MAX)
            for r in _table(run) if r['case'] == 'default plan']


def neuron(run):
    rows = {r['variant']: r for r in _table(run)}
    ts = [c for c in run['columns'] if c.startswith('T=')]
    theirs = [k for k in rows if k.startswith('SpikingJelly')]
    out = []
    for ours in ('ours, signed', 'ours, unsigned'):
        if ours not in rows or not theirs:
            continue
        for t in ts:
            mine = _float(rows[ours][t])
            best = min(_float(rows[k][t]) for k in theirs)
            if mine is None or best is None or best != best:
                continue
            out.append((f'{ours}, {t.split()[0]}', f'{mine:.3f} ms',
                        f'< SpikingJelly {best:.3f} ms', mine < best))
    return out


def qat_step(run):
    key = '/ ReLU (fp32) step'
    return [(r['model'], _float(r[key]), f'<= {QAT_MAX}',
             _float(r[key]) <= QAT_MAX) for r in _table(run)
            if r['model'].startswith('qat') and 'torch path' not in
            r['model'] and _float(r[key]) is not None]


def snn_peer(run):
    out = []
    for r in _table(run):
        out.append((f"T={r['T']}, outputs", r['outputs equal'],
                    'equal', r['outputs equal'].startswith('yes')))
        ratio = _float(r['SpikingJelly / ours, median'])
        if ratio is not None:
            out.append((f"T={r['T']}, SpikingJelly / ours time", ratio,
                        '>= 1.0', ratio >= 1.0))
    return out


#: benchmark -> (what the table calls it, the check of one run)
CHECKS = {
    'snn_time': ('SNN time / (T x QANN)', snn_time),
    'snn_memory': ('SNN peak memory / QANN', snn_memory),
    'neuron': ('neuron update vs SpikingJelly', neuron),
    'qat_step': ('QAT step / ReLU step', qat_step),
    'snn_peer': ('network vs SpikingJelly', snn_peer),
}


def judge(data, since, kind):
    """[(benchmark, setting, what, measured, target, met)] of the runs of
    device ``kind`` recorded at or after ``since`` (results' date format)."""
    runs = [r for r in data['runs'] if r['env'].get('kind') == kind
            and r['env'].get('date', '') >= since]
    lines = []
    for bench, (title, check) in CHECKS.items():
        mine = [r for r in runs if r['bench'] == bench]
        found = [(title, run['setting']) + c for run in mine
                 for c in check(run)]
        lines += found or [(title, '-', '-', 'not measured', '-', None)]
    return lines


def render(lines) -> str:
    out = ['| benchmark | setting | case | measured | target | met |',
           '|---|---|---|---|---|---|']
    for title, setting, what, measured, target, met in lines:
        verdict = {True: 'yes', False: 'NO', None: '-'}[met]
        out.append(f'| {title} | {setting} | {what} | {measured} | {target} '
                   f'| {verdict} |')
    met = sum(1 for line in lines if line[-1] is True)
    missed = sum(1 for line in lines if line[-1] is False)
    unmeasured = sum(1 for line in lines if line[-1] is None)
    out.append(f'\n{met} met, {missed} missed, {unmeasured} not measured')
    return '\n'.join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--results', default=DEFAULT_MD, metavar='RESULTS.md')
    p.add_argument('--since', default='',
                   help="only runs recorded at or after this time "
                   "('YYYY-MM-DD HH:MM UTC', as results.json writes it)")
    p.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    args = p.parse_args(argv)
    lines = judge(load(args.results), args.since, args.device)
    print(render(lines))
    return lines


if __name__ == '__main__':
    main()
