"""The report half of ``unseen_split_protocol.py``: verdicts against each
task's bar, the markdown tables (per run, the other family of test images,
the judges side by side) and the plot, from the rows that script collects.

Kept apart from the script that plans and runs the steps, so each file
has one job; the script imports what it writes with.
"""
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: the issue's bar per task, in the printed points
TARGET = {'cls': 0.2, 'det': 0.5, 'seg': 0.5}
STAGES = ('QANN', 'SNN before', 'groups', 'joint', 'task')
#: the run every plan makes: the paper's neuron, judged on held-out
#: training images
DEFAULT_RUN = ('signed', 'train_slice')


def _bootstrap():
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    from fastsnn_mm.analysis import bootstrap
    return bootstrap


def verdicts(r):
    """The run's verdicts against the task's bar, each 'met', 'missed' or
    'undecided': ``vs_untuned`` (the tuned SNN is not below the untuned
    one by more than the bar), ``vs_qann`` (nor below the QANN by more
    than the bar: the bar's meaning in the issue), both from the 95 %
    paired intervals after tuning (no interval: undecided); ``run``:
    missed when either is missed, met when both are met, else undecided.
    """
    bar = TARGET[r['task']]
    judge = _bootstrap().verdict
    out = {}
    for name, field in (('vs_untuned', 'tuned_vs_untuned'),
                        ('vs_qann', 'tuned_vs_qann')):
        iv = r.get(field)
        out[name] = 'undecided' if iv is None else judge(iv[1], iv[2], bar)
    parts = list(out.values())
    out['run'] = 'missed' if 'missed' in parts else \
        'met' if all(p == 'met' for p in parts) else 'undecided'
    return out


def verdict(r):
    """The run's three-valued verdict: 'met', 'missed' or 'undecided'."""
    return verdicts(r)['run']


_AGAINST = {'vs_untuned': 'the untuned SNN', 'vs_qann': 'the QANN'}


def verdict_text(r):
    """The verdict with what decided it, for the table."""
    v, bar = verdicts(r), TARGET[r['task']]
    if v['run'] == 'met':
        return 'met'
    why = []
    for name, field in (('vs_untuned', 'tuned_vs_untuned'),
                        ('vs_qann', 'tuned_vs_qann')):
        if v[name] != v['run']:  # what made it missed, or undecided
            continue
        if r.get(field) is None:
            why.append(f'no interval against {_AGAINST[name]}')
        elif v[name] == 'missed':
            why.append(f'below {_AGAINST[name]} by more than {bar:g}')
        else:
            why.append(f'interval against {_AGAINST[name]} straddles '
                       f'-{bar:g}')
    return f'{v["run"]}: ' + '; '.join(why)


def run_label(r):
    """'cls accuracy/top1, 2-bit (T=3), seed 0' and, off the default run,
    the neuron and the judge."""
    label = (f'{r["task"]} {r["metric"]}, {r["bits"]}-bit (T={r["T"]}), '
             f'seed {r["seed"]}')
    if (r.get('regime', DEFAULT_RUN[0]), r.get('judge', DEFAULT_RUN[1])) \
            != DEFAULT_RUN:
        label += f', {r["neuron"]}, judge {r["judge"]}'
    return label


def _judged(v):
    return f'{v:.2f}' if abs(v) >= 0.1 or v == 0 else f'{v:.2e}'


def _ci(iv):
    """'+d [lo, hi]' of [difference, lo, hi]; '-' when there is none."""
    if iv is None:
        return '-'
    return f'{iv[0]:+.2f} [{iv[1]:+.2f}, {iv[2]:+.2f}]'


def table(rows):
    head = ('| task, bits (T), seed | QANN | SNN before (- QANN [95% CI]) | '
            'after groups (- SNN before [95% CI]) | after joint (same) | '
            'after task loss (same) | tuned - untuned SNN [95% CI] | '
            'tuned SNN - QANN [95% CI] | verdict | '
            'judging slice SNN before -> after (QANN) | mean mismatch '
            'before -> after (inherited before) | stage seconds groups / '
            'joint / task; QAT run |')
    lines = [head, '|' + '---|' * 13]
    for r in rows:
        st, sec = r['stages'], r['stage_seconds']
        ivs = r.get('intervals', {})

        def f(k, against):
            if k not in st:
                return '-'
            iv = ivs.get(k, {}).get(against)
            return f'{st[k]:.2f}' + ('' if iv is None else f' ({_ci(iv)})')
        secs = ' / '.join(f'{sec[k]:.0f}' if k in sec else '-'
                          for k in ('groups', 'joint', 'task'))
        qat = '-' if r['qat_seconds'] is None else f'{r["qat_seconds"]:.0f}'
        mm = r['mismatch']
        lines.append(
            f'| {run_label(r)} | {f("QANN", None)} | '
            f'{f("SNN before", "vs_qann")} | '
            + ' | '.join(f(k, 'vs_untuned') for k in STAGES[2:]) +
            f' | {_ci(r.get("tuned_vs_untuned"))} | '
            f'{_ci(r.get("tuned_vs_qann"))} | '
            f'{verdict_text(r)} (bar {TARGET[r["task"]]:g}) | '
            f'{_judged(r["judged_before"])} -> {_judged(r["judged_after"])} '
            f'({_judged(r["judged_qann"])}) | {mm[0]:.4f} -> {mm[1]:.4f} '
            f'({100 * mm[2] / max(mm[0], 1e-12):.0f} %) | {secs}; {qat} |')
    note = interval_note(rows)
    if note:
        lines += ['', note]
    return '\n'.join(lines)


def interval_note(rows):
    """What the intervals are and what they cost (the most of any run);
    '' when no run has them."""
    methods = [r['interval_method'] for r in rows
               if r.get('interval_method')]
    if not methods:
        return ''
    m = methods[0]
    cost = ', '.join(
        f'{max(x.get(k, 0.0) for x in methods):.1f} s {what}'
        for k, what in (('bootstrap_seconds', 'resampling'),
                        ('record_seconds', 'keeping per-image records'),
                        ('qann_test_seconds', 'testing the QANN')))
    return (f'Intervals: {m["level"]:.0%} paired bootstrap over the test '
            f'images ({m["resamples"]} resamples, seed {m["seed"]}), in '
            f'points; cost per run at most {cost}. Verdict against the bar: '
            'met when the tuned - untuned and tuned - QANN intervals both '
            'lie at or above -bar, missed when either lies wholly below '
            'it, else undecided.')


def other_table(rows):
    """The same QANNs and tuned SNNs on the other family's test split."""
    rows = [r for r in rows if r['other_family']]
    if not rows:
        return ''
    lines = ['| task, bits (T), seed | QANN | SNN before | SNN tuned | '
             'tuned - QANN | tuned - before |', '|' + '---|' * 6]
    for r in rows:
        o = r['other_family']
        lines.append(
            f'| {run_label(r)} | {o["QANN"]:.2f} | {o["SNN before"]:.2f} | '
            f'{o["tuned"]:.2f} | {o["tuned"] - o["QANN"]:+.2f} | '
            f'{o["tuned"] - o["SNN before"]:+.2f} |')
    return '\n'.join(lines)


def _mean(xs):
    return f'{sum(xs) / len(xs):+.2f}' if xs else '-'


def judge_table(rows):
    """The same QANN, neuron and T tuned under each judge, side by side:
    tuned - untuned SNN and tuned SNN - QANN on the test split with their
    95 % intervals, and per judge the verdict counts and the mean of each
    difference (also in units of each task's bar, so that top-1, mAP and
    mIoU points weigh alike); '' with fewer than two judges."""
    judges = list(dict.fromkeys(r['judge'] for r in rows))
    if len(judges) < 2:
        return ''
    by_run = {}
    for r in rows:
        key = (r['task'], r['metric'], r['bits'], r['T'], r['neuron'],
               r['seed'])
        by_run.setdefault(key, {})[r['judge']] = r
    lines = ['| task, bits (T), neuron, seed | SNN before - QANN | ' +
             ' | '.join(f'judge {j}: tuned - untuned; tuned - QANN'
                        for j in judges) + ' |',
             '|' + '---|' * (2 + len(judges))]
    for (task, metric, b, t, neuron, seed), got in by_run.items():
        first = next(iter(got.values()))
        cells = []
        for j in judges:
            r = got.get(j)
            cells.append('-' if r is None else
                         f'{_ci(r.get("tuned_vs_untuned"))}; '
                         f'{_ci(r.get("tuned_vs_qann"))} '
                         f'({r["verdicts"]["run"]})')
        before = first.get('intervals', {}).get('SNN before', {}).get(
            'vs_qann')
        lines.append(f'| {task} {metric}, {b}-bit (T={t}), {neuron}, seed '
                     f'{seed} | {_ci(before)} | ' + ' | '.join(cells) + ' |')
    lines += ['', '| judge | runs | met / missed / undecided | mean tuned - '
              'untuned | mean tuned - QANN | mean (tuned - untuned) / bar | '
              'runs tuned below untuned (interval below 0) |',
              '|---|---|---|---|---|---|---|']
    for j in judges:
        mine = [r for r in rows if r['judge'] == j]
        v = [r['verdicts']['run'] for r in mine]
        ups = [r['tuned_vs_untuned'][0] for r in mine
               if r.get('tuned_vs_untuned')]
        qs = [r['tuned_vs_qann'][0] for r in mine if r.get('tuned_vs_qann')]
        below = sum(1 for r in mine if r.get('tuned_vs_untuned')
                    and r['tuned_vs_untuned'][2] < 0)
        per_bar = [r['tuned_vs_untuned'][0] / TARGET[r['task']]
                   for r in mine if r.get('tuned_vs_untuned')]
        lines.append(f'| {j} | {len(mine)} | {v.count("met")} / '
                     f'{v.count("missed")} / {v.count("undecided")} | '
                     f'{_mean(ups)} | {_mean(qs)} | {_mean(per_bar)} | '
                     f'{below} |')
    return '\n'.join(lines)


#: x positions of the lower panels: each stage's difference to the
#: untuned SNN, then the tuned SNN's to the QANN
DIFF_TICKS = ('groups', 'joint', 'task', 'after: - QANN')


#: line colour per judge in the plot
JUDGE_COLOURS = {'train_slice': 'tab:blue', 'val': 'tab:orange',
                 'val_agreement': 'tab:green'}


def plot(rows, path):
    """One column per task and SNN setting (neuron, T). Upper panels:
    metric per stage; lower panels: each stage's difference to the untuned
    SNN and, last, the tuned SNN's to the QANN, with their 95 % paired
    bootstrap intervals, against -bar. Colour: the judge; line style: the
    seed (and bit width)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    panels = list(dict.fromkeys(
        (r['task'], r.get('neuron', 'signed'), r['T']) for r in rows))
    styles = list(dict.fromkeys((r['bits'], r['seed']) for r in rows))
    fig = Figure(figsize=(4.2 * len(panels), 6.8))
    FigureCanvasAgg(fig)
    for i, (task, neuron, t) in enumerate(panels):
        ax = fig.add_subplot(2, len(panels), i + 1)
        low = fig.add_subplot(2, len(panels), len(panels) + i + 1)
        runs = [r for r in rows if (r['task'], r.get('neuron', 'signed'),
                                    r['T']) == (task, neuron, t)]
        for j, r in enumerate(runs):
            xs = [k for k in STAGES if k in r['stages']]
            style = ('-', '--', ':', '-.')[
                styles.index((r['bits'], r['seed'])) % 4]
            judge = r.get('judge', DEFAULT_RUN[1])
            label = f'{judge}, {r["bits"]}-bit seed {r["seed"]}'
            colour = JUDGE_COLOURS.get(judge)
            ax.plot([STAGES.index(k) for k in xs],
                    [r['stages'][k] for k in xs], marker='o',
                    linestyle=style, label=label, color=colour)
            ivs = r.get('intervals', {})
            got = [(x, ivs[k]['vs_untuned']) for x, k in
                   enumerate(DIFF_TICKS[:3])
                   if ivs.get(k, {}).get('vs_untuned')]
            if r.get('tuned_vs_qann'):
                got.append((len(DIFF_TICKS) - 1, r['tuned_vs_qann']))
            if not got:
                continue
            shift = 0.08 * (j - (len(runs) - 1) / 2)  # runs side by side
            x = [g[0] + shift for g in got]
            d = [g[1][0] for g in got]
            err = [[g[1][0] - g[1][1] for g in got],
                   [g[1][2] - g[1][0] for g in got]]
            low.errorbar(x, d, yerr=err, fmt='o', capsize=3, color=colour,
                         label=label)
        ax.set_xticks(range(len(STAGES)))
        ax.set_xticklabels(STAGES, rotation=30, fontsize=8)
        metric = runs[0]['metric']
        ax.set_title(f'{task}: {metric}, {neuron} IF, T={t}; test split',
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        bar = TARGET[task]
        low.axhline(0.0, color='0.5', linewidth=0.8)
        low.axhline(-bar, color='r', linestyle=':', linewidth=1,
                    label=f'-bar ({bar:g})')
        low.set_xticks(range(len(DIFF_TICKS)))
        low.set_xticklabels(DIFF_TICKS, rotation=30, fontsize=8)
        low.set_xlim(-0.5, len(DIFF_TICKS) - 0.5)
        low.set_title('tuned - untuned SNN, 95 % paired bootstrap CI '
                      '(points)', fontsize=9)
        low.grid(alpha=0.3)
        low.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
