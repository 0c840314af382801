"""Fine-tuning judged on held-out training images, reported on a test split
nothing trained, tuned or judged on: QANN, SNN before tuning and after each
tuning stage, for the synthetic demo tasks, bit widths and seeds.

    make data    # the synthetic VOC with its own 200-image test split
    python tools/analysis_tools/unseen_split_protocol.py \\
        --work-dir work_dirs/protocol --tasks cls det seg --bits 2 3 \\
        --seeds 0 1 --jobs 2

Per seed it trains the demo QANN chains with ``tools/train.py`` (3-bit
from fp32 weights; 2-bit from the 3-bit one; the segmentor's backbone from
the classifier), then per task and bit width:

* ``tools/test.py --compare`` on the test split: QANN and signed SNN at
  T = 2^b - 1 before any tuning;
* ``tools/train.py <task>_2bit_layerwise.py`` (the demo recipe: layer
  groups, joint stage, task-loss stage; ``report_on='test'``,
  ``report_stages=True``): keep/revert judged on 20 % of the training
  images held out of tuning, the test split evaluated after each stage.

Each step runs as its own process with one thread (``--jobs`` at once),
logs to ``<step>/run.log`` and leaves ``<step>/done.json`` (its wall
seconds); a rerun skips finished steps, so a killed protocol goes on.
At the end ``protocol.md`` (one table: metric per stage, tuned - untuned
SNN and tuned SNN - QANN after, stage cost against the QAT run),
``protocol.json`` and ``protocol.png`` (metric vs stage, one panel per
task; below it each stage's difference to the untuned SNN) are written.

Every difference on the test split comes with its 95 % paired bootstrap
interval, which the fine-tuning run computes from the per-image records
of its test reports (the QANN tested there too; see
``fastsnn_mm/engine/loops/finetune_report.py``). A run's verdict is
three-valued against the task's bar (points: 0.2 top-1, 0.5 mAP, 0.5
mIoU): *met* when both the tuned - untuned SNN interval and the tuned SNN
- QANN interval lie at or above -bar, *missed* when either lies wholly
below it, *undecided* otherwise (an interval straddles -bar, or is not
there: more test images, not a verdict, would settle it).
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PY = sys.executable

#: task -> (3-bit config, 2-bit config, layer-wise config, headline metric,
#: how the metric is printed: scale to points)
TASKS = {
    'cls': ('configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py',
            'configs/fastsnn_cls/qresnet_synthetic_cls_2bit.py',
            'configs/fastsnn_cls/qresnet_synthetic_cls_2bit_layerwise.py',
            'accuracy/top1', 1.0),
    'det': ('configs/yolo_fastsnn_synthetic.py',
            'configs/yolo_fastsnn_synthetic_2bit.py',
            'configs/yolo_fastsnn_synthetic_2bit_layerwise.py',
            'pascal_voc/mAP', 100.0),
    'seg': ('configs/deeplab_fastsnn_synthetic.py',
            'configs/deeplab_fastsnn_synthetic_2bit.py',
            'configs/deeplab_fastsnn_synthetic_2bit_layerwise.py',
            'mIoU', 1.0),
}
#: the issue's bar per task, in the printed points
TARGET = {'cls': 0.2, 'det': 0.5, 'seg': 0.5}
STAGES = ('QANN', 'SNN before', 'groups', 'joint', 'task')
#: report rows of the whole-model stages (the others are layer groups)
WHOLE_MODEL = ('all layers (joint)', 'all layers (task loss)')
#: the fine-tuning JSON's report labels -> the protocol's stage names
REPORT_LABELS = {'before': 'SNN before', 'groups': 'groups',
                 'joint': 'joint', 'task': 'task', 'after': 'after'}
#: the fine-tuning JSON's differences -> the protocol's names
DIFFERENCES = {'tuned_minus_untuned': 'vs_untuned',
               'snn_minus_qann': 'vs_qann'}


class Step:
    """One process of the protocol and the steps it waits for."""

    def __init__(self, name, argv, needs=()):
        self.name, self.argv, self.needs = name, argv, list(needs)
        self.proc = self.started = None

    def folder(self, root):
        return osp.join(root, self.name)

    def done(self, root):
        return osp.isfile(osp.join(self.folder(root), 'done.json'))


def last_checkpoint(folder):
    with open(osp.join(folder, 'last_checkpoint')) as f:
        return f.read().strip()


#: regime -> (neuron, T from the bit width): the paper's SNN, and settings
#: where it loses to its QANN before tuning (what fine-tuning is for)
REGIMES = {'signed': ('signed', lambda b: 2 ** b - 1),
           'unsigned': ('unsigned', lambda b: 2 ** b - 1),
           'short': ('signed', lambda b: 2 ** (b - 1))}
#: who keeps or reverts each stage (``train_cfg.judge_on``)
JUDGES = ('train_slice', 'val', 'val_agreement')
DEFAULT_RUN = ('signed', 'train_slice')


def eval_name(qann, regime):
    return f'eval_{qann}' + ('' if regime == DEFAULT_RUN[0] else
                             f'_{regime}')


def ft_name(qann, regime, judge):
    return f'ft_{qann}' + ('' if (regime, judge) == DEFAULT_RUN else
                           f'_{regime}_{judge}')


def plan(root, tasks, bits, seeds, other=None, regimes=(DEFAULT_RUN[0],),
         judges=(DEFAULT_RUN[1],), test_root=None):
    """The steps, in an order that respects what each needs; ``other``: a
    data root whose test split is of the other family, evaluated too;
    ``test_root``: a data root whose test split replaces the default one
    (the same training and val images, more test images)."""
    steps = []
    swap = [] if test_root is None else [
        f'test_dataloader.dataset.data_root={test_root}']

    def train(name, config, seed, load_from=None, extra=(), needs=()):
        opts = [f'randomness.seed={seed}'] + list(extra)
        if load_from:
            opts.append(f'load_from=@{load_from}')
        steps.append(Step(name, ['tools/train.py', config, '--work-dir',
                                 osp.join(root, name), '--cfg-options']
                          + opts, needs))

    for s in seeds:
        need = set(tasks) | ({'cls'} if 'seg' in tasks else set())
        for task in sorted(need):
            q3, q2 = TASKS[task][:2]
            start = f'cls3_s{s}' if task == 'seg' else None
            train(f'{task}3_s{s}', q3, s, start, needs=[start] if start
                  else ())
            if 2 in bits:
                train(f'{task}2_s{s}', q2, s, f'{task}3_s{s}',
                      needs=[f'{task}3_s{s}'])
        for task in tasks:
            ft = TASKS[task][2]
            for b in bits:
                qann = f'{task}{b}_s{s}'
                for regime in regimes:
                    neuron, t = REGIMES[regime][0], str(REGIMES[regime][1](b))
                    ev = eval_name(qann, regime)
                    steps.append(Step(ev, [
                        'tools/test.py', TASKS[task][3 - b], f'@{qann}',
                        '--compare', '--neuron', neuron, '--timesteps', t,
                        '--work-dir', osp.join(root, ev), '--out-json',
                        osp.join(root, ev, 'results.json')]
                        + (['--cfg-options'] + swap if swap else []),
                        [qann]))
                    for judge in judges:
                        train(ft_name(qann, regime, judge), ft, s, qann,
                              needs=[qann], extra=[
                                  f'model.quant.bits={b}',
                                  f'train_cfg.timesteps={t}',
                                  f"train_cfg.neuron='{neuron}'",
                                  f"train_cfg.judge_on='{judge}'",
                                  "train_cfg.report_on='test'",
                                  'train_cfg.report_stages=True'] + swap)
                if other and DEFAULT_RUN[0] in regimes and \
                        DEFAULT_RUN[1] in judges:
                    steps += other_family_steps(root, other, task, b, qann)
    return steps


def other_family_steps(root, other, task, b, qann):
    """QANN, SNN before and tuned SNN on the other family's test split."""
    config, t = TASKS[task][3 - b], str(2 ** b - 1)
    swap = ['--cfg-options', f'test_dataloader.dataset.data_root={other}']
    tuned = osp.join(f'ft_{qann}', f'snn_finetuned_signed_T{t}.pth')
    return [
        Step(f'other_{qann}', [
            'tools/test.py', config, f'@{qann}', '--compare', '--neuron',
            'signed', '--timesteps', t, '--work-dir',
            osp.join(root, f'other_{qann}'), '--out-json',
            osp.join(root, f'other_{qann}', 'results.json')] + swap,
            [qann]),
        Step(f'other_ft_{qann}', [
            'tools/test.py', config, osp.join(root, tuned), '--snn',
            '--neuron', 'signed', '--timesteps', t, '--work-dir',
            osp.join(root, f'other_ft_{qann}'), '--out-json',
            osp.join(root, f'other_ft_{qann}', 'results.json')] + swap,
            [f'ft_{qann}'])]


def resolve(argv, root):
    """``@step`` names the step's last checkpoint."""
    out = []
    for a in argv:
        if '@' in a:
            head, step = a.split('@', 1)
            a = head + last_checkpoint(osp.join(root, step))
        out.append(a)
    return out


def run(steps, root, jobs):
    """Run what is not done yet, ``jobs`` processes of one thread each."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH',
                                                             ''))
    todo = [s for s in steps if not s.done(root)]
    total, running, finished = len(todo), [], 0
    print(f'[protocol] {len(steps) - total} of {len(steps)} steps already '
          f'done; {total} to run, {jobs} at a time', flush=True)
    while todo or running:
        for s in list(running):
            if s.proc.poll() is None:
                continue
            running.remove(s)
            seconds = time.perf_counter() - s.started
            if s.proc.returncode:
                sys.exit(f'[protocol] {s.name} failed (rc '
                         f'{s.proc.returncode}): see '
                         f'{osp.join(s.folder(root), "run.log")}')
            with open(osp.join(s.folder(root), 'done.json'), 'w') as f:
                json.dump(dict(seconds=seconds), f)
            finished += 1
            print(f'[protocol] {finished}/{total} {s.name} done in '
                  f'{seconds:.0f} s', flush=True)
        ready = [s for s in todo if all(
            osp.isfile(osp.join(root, n, 'done.json')) for n in s.needs)]
        while ready and len(running) < jobs:
            s = ready.pop(0)
            todo.remove(s)
            os.makedirs(s.folder(root), exist_ok=True)
            log = open(osp.join(s.folder(root), 'run.log'), 'w')
            s.proc = subprocess.Popen([PY] + resolve(s.argv, root), cwd=REPO,
                                      env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
            s.started = time.perf_counter()
            running.append(s)
            print(f'[protocol] started {s.name}', flush=True)
        if todo and not running:
            sys.exit('[protocol] steps wait on steps that are not planned: '
                     + ', '.join(s.name for s in todo))
        time.sleep(2)


def _seconds(root, step):
    path = osp.join(root, step, 'done.json')
    return json.load(open(path))['seconds'] if osp.isfile(path) else None


def collect(root, tasks, bits, seeds, regimes=(DEFAULT_RUN[0],),
            judges=(DEFAULT_RUN[1],)):
    """One row per task, bit width, seed, regime and judge, metrics in
    points."""
    rows = []
    runs = [(task, b, s, regime, judge) for task in tasks for b in bits
            for regime in regimes for judge in judges for s in seeds]
    for task, b, s, regime, judge in runs:
        key, scale = TASKS[task][3], TASKS[task][4]
        name = f'{task}{b}_s{s}'
        ev = osp.join(root, eval_name(name, regime), 'results.json')
        ft = osp.join(root, ft_name(name, regime, judge),
                      'layerwise_finetune.json')
        if not (osp.isfile(ev) and osp.isfile(ft)):
            continue
        qann, snn = json.load(open(ev))[:2]
        rep = json.load(open(ft))
        # the agreement judge's score is minus an MSE, not a metric
        judged_scale = 1.0 if judge == 'val_agreement' else scale
        stages = {'QANN': qann[key] * scale,
                  'SNN before': snn[key] * scale}
        intervals = _intervals(rep, key, scale, snn)
        after_iv = intervals.get('after', {})
        for st, m in rep.get('reported_stages', {}).items():
            stages[st] = m[key] * scale
        after = rep['reported_on']['after'][key] * scale
        kept = {g['layer']: not g['reverted'] for g in rep['groups']}
        other = _other_family(root, name, key, scale) if (
            regime, judge) == DEFAULT_RUN else None
        rows.append(dict(
            task=task, bits=b, T=REGIMES[regime][1](b), seed=s,
            metric=key, regime=regime, neuron=REGIMES[regime][0],
            judge=judge,
            stages=stages, after=after,
            gap_after=after - stages['QANN'],
            gap_before=stages['SNN before'] - stages['QANN'],
            judged_before=rep['metric_before'] * judged_scale,
            judged_after=rep['metric_after'] * judged_scale,
            judged_qann=rep['metric_qann'] * judged_scale,
            groups_kept=sum(v for k, v in kept.items()
                            if k not in WHOLE_MODEL),
            groups=sum(1 for k in kept if k not in WHOLE_MODEL),
            rows=[dict(layer=g['layer'], reverted=g['reverted'])
                  for g in rep['groups']],
            mismatch=(rep['mean_mismatch_before'],
                      rep['mean_mismatch_after'],
                      rep['mean_inherited_before']),
            stage_seconds=rep.get('stage_seconds', {}),
            other_family=other,
            qat_seconds=_seconds(root, name),
            bar=TARGET[task], intervals=intervals,
            tuned_vs_untuned=after_iv.get('vs_untuned'),
            tuned_vs_qann=after_iv.get('vs_qann'),
            interval_method=rep.get('interval_method')))
        rows[-1]['verdicts'] = verdicts(rows[-1])
    return rows


def _intervals(rep, key, scale, snn):
    """stage -> {'vs_untuned' | 'vs_qann': [difference, lo, hi]} in
    points, from the fine-tuning run's paired bootstrap intervals; the
    untuned SNN's against the QANN from ``tools/test.py --compare`` (its
    ``<key>_diff`` / ``<key>_ci95``) when the run has none."""
    out = {}
    for label, per_key in rep.get('reported_intervals', {}).items():
        got = per_key.get(key, {})
        diffs = {DIFFERENCES[k]: [got[k]['diff'] * scale] +
                 [v * scale for v in got[k]['ci95']]
                 for k in DIFFERENCES if k in got}
        if diffs:
            out[REPORT_LABELS.get(label, label)] = diffs
    ci = snn.get(key + '_ci95')
    if 'vs_qann' not in out.get('SNN before', {}) and ci:
        out.setdefault('SNN before', {})['vs_qann'] = [
            snn[key + '_diff'] * scale] + [v * scale for v in ci]
    return out


def _other_family(root, name, key, scale):
    """QANN / SNN before / tuned on the other family's test split, or
    None where those steps did not run."""
    paths = [osp.join(root, f'{k}_{name}', 'results.json')
             for k in ('other', 'other_ft')]
    if not all(osp.isfile(p) for p in paths):
        return None
    (qann, snn), tuned = json.load(open(paths[0]))[:2], \
        json.load(open(paths[1]))[0]
    return {'QANN': qann[key] * scale, 'SNN before': snn[key] * scale,
            'tuned': tuned[key] * scale}


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


def main():
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--work-dir', default='work_dirs/protocol')
    p.add_argument('--tasks', nargs='+', default=list(TASKS),
                   choices=list(TASKS))
    p.add_argument('--bits', nargs='+', type=int, default=[2, 3],
                   choices=[2, 3])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    p.add_argument('--jobs', type=int, default=2,
                   help='processes at once, one thread each')
    p.add_argument('--other-family', metavar='DATA_ROOT',
                   help='also evaluate on the test split of this data root '
                   '(make_synthetic_voc.py ... --test-family other)')
    p.add_argument('--regimes', nargs='+', default=[DEFAULT_RUN[0]],
                   choices=list(REGIMES),
                   help="SNN settings: 'signed' (T = 2^b - 1, the paper's), "
                   "'unsigned' (same T), 'short' (signed, T = 2^(b-1)); "
                   'the last two are where the SNN loses to its QANN')
    p.add_argument('--judges', nargs='+', default=[DEFAULT_RUN[1]],
                   choices=list(JUDGES),
                   help='who keeps or reverts each stage '
                   '(train_cfg.judge_on): a held-out slice of the training '
                   "images, the val split's labels, or the val images' "
                   'SNN-QANN output agreement (no labels); each judge is a '
                   'fine-tuning run of its own from the same QANN')
    p.add_argument('--test-root', metavar='DATA_ROOT',
                   help='report on the test split of this data root (the '
                   'same training and val images as data/synthetic_voc, '
                   'more test images: make_synthetic_voc.py ... '
                   '--num-test 1000 --test-seed S)')
    p.add_argument('--report-only', action='store_true',
                   help='write the table and plot from finished steps')
    args = p.parse_args()
    if args.jobs < 1:
        sys.exit(f'error: --jobs must be >= 1, got {args.jobs}')
    root = osp.abspath(args.work_dir)
    test_root = args.test_root and osp.abspath(args.test_root)
    test_list = osp.join(test_root or osp.join(REPO, 'data/synthetic_voc'),
                         'VOC2007/ImageSets/Main/test.txt')
    val_list = test_list.replace('test.txt', 'val.txt')
    if not args.report_only and (
            not osp.isfile(test_list)
            or open(test_list).read() == open(val_list).read()):
        if test_root:
            sys.exit(f'error: --test-root {args.test_root} has no test split '
                     'of its own: write one with `python tools/'
                     'dataset_converters/make_synthetic_voc.py --out '
                     f'{args.test_root} --num-train 400 --num-val 100 '
                     '--seed 0 --num-test 1000 --test-seed 3000`')
        sys.exit('error: data/synthetic_voc has no test split of its own: '
                 'run `make data` (it writes 200 test images from another '
                 'seed)')
    os.makedirs(root, exist_ok=True)
    if not args.report_only:
        other = args.other_family and osp.abspath(args.other_family)
        run(plan(root, args.tasks, args.bits, args.seeds, other,
                 args.regimes, args.judges, test_root), root, args.jobs)
    rows = collect(root, args.tasks, args.bits, args.seeds, args.regimes,
                   args.judges)
    if not rows:
        sys.exit(f'error: no finished fine-tuning runs under {root}')
    text = table(rows)
    other = other_table(rows)
    if other:
        text += ('\n\nThe other family of test images (tiled backgrounds, '
                 'stretched striped shapes):\n\n' + other)
    judges = judge_table(rows)
    if judges:
        text += ('\n\nThe judges side by side (each a fine-tuning run '
                 'of its own from the same QANN; test split):\n\n' + judges)
    print(text)
    with open(osp.join(root, 'protocol.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(root, 'protocol.json'), 'w') as f:
        json.dump(rows, f, indent=2)
    plot(rows, osp.join(root, 'protocol.png'))
    print(f'wrote {root}/protocol.md, protocol.json and protocol.png')


if __name__ == '__main__':
    main()
