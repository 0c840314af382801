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

from protocol_report import (  # noqa: E402 (beside this script)
    DEFAULT_RUN,
    TARGET,
    judge_table,
    other_table,
    plot,
    table,
    verdicts,
)

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
