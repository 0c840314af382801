"""Sweep the installed mm model zoo: every stock model config of
mmpretrain, mmdet and mmseg whose model type our wrappers cover, made a
Fast-SNN the README way, built, refused (with the reason), converted and
checked against its QANN (tools/analysis_tools/check_conversion.py's
check, random weights, small random images).

    python tools/analysis_tools/sweep_model_zoo.py [--packages mmpretrain
        mmdet mmseg] [--sample N] [--jobs 2] [--timeout 300]
        [--out-dir work_dirs/zoo_sweep]

Writes records.jsonl (one line a config, appended as it goes, so a stopped
sweep keeps what it did and ``--resume`` skips it), summary.md (counts per
package and outcome, reasons) and summary.png. ``--sample N`` takes a fixed
sample of N configs per package (seeded), the sweep's quick form.
"""
import argparse
import json
import multiprocessing as mp
import os
import os.path as osp
import random
import sys
import time

from mmengine.config import Config
from mmengine.utils import ProgressBar

import fastsnn_mm  # noqa: F401
from fastsnn_mm.analysis.zoo_sweep import (
    OUTCOMES,
    PACKAGES,
    check_model_cfg,
    fast_snn_model_cfg,
    model_key,
    summarize,
    zoo_configs,
)
from fastsnn_mm.utils.atomic import atomic_write
from fastsnn_mm.utils.launch import fail


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--packages', nargs='+', default=list(PACKAGES),
                        choices=list(PACKAGES))
    parser.add_argument('--sample', type=int,
                        help='a fixed sample of this many configs a package')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--timeout', type=int, default=300,
                        help='seconds per model before it counts as failed')
    parser.add_argument('--out-dir', default='work_dirs/zoo_sweep')
    parser.add_argument('--resume', action='store_true',
                        help='keep records.jsonl and skip its configs')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        fail(f'--jobs must be >= 1, got {args.jobs}')
    if args.sample is not None and args.sample < 1:
        fail(f'--sample must be >= 1, got {args.sample}')
    if args.timeout < 1:
        fail(f'--timeout must be >= 1, got {args.timeout}')
    return args


def plan(args, done):
    """[(package, config path)] to sweep, in a fixed order."""
    todo = []
    for pkg in args.packages:
        paths = zoo_configs(pkg)
        if args.sample:
            paths = sorted(random.Random(args.seed).sample(
                paths, min(args.sample, len(paths))))
        todo += [(pkg, p) for p in paths if p not in done]
    return todo


def read_config(pkg, path):
    """(record so far, Fast-SNN model dict or None)."""
    rel = path.split(f'{os.sep}configs{os.sep}', 1)[-1]
    record = dict(package=pkg, config=rel, path=path)
    try:
        cfg = Config.fromfile(path)
        model = fast_snn_model_cfg(pkg, cfg)
    except Exception as err:  # a config its package cannot load here
        record.update(outcome='config error',
                      detail=' '.join(str(err).split())[:200])
        return record, None
    if model is None:
        kind = cfg.get('model', {}).get('type', '?') \
            if isinstance(cfg.get('model'), dict) else '?'
        record.update(outcome='not covered', detail=str(kind))
        return record, None
    record['model'] = model_key(model)
    return record, model


def interleaved(models):
    """The models taking turns by package, so a stopped sweep has covered
    every package alike."""
    queues = {}
    for key, (pkg, model) in models.items():
        queues.setdefault(pkg, []).append((key, (pkg, model)))
    order = []
    while any(queues.values()):
        for queue in queues.values():
            if queue:
                order.append(queue.pop(0))
    return dict(order)


#: what a check adds to a config's record (copied to configs of its model)
RESULT_FIELDS = ('outcome', 'detail', 'wrong_layers', 'outputs_rel_error',
                 'where', 'seconds')


def reusable_results(records):
    """model key -> the result fields of the first record that checked it
    (a time-out is not reused: it is tried again)."""
    out = {}
    for r in records:
        key = r.get('model')
        if key is None or key in out or 'over ' in r.get('detail', ''):
            continue
        out[key] = dict({k: r[k] for k in RESULT_FIELDS if k in r},
                        checked_with=r.get('checked_with', r['config']))
    return out


def _work(job):
    pkg, model, timeout = job
    return check_model_cfg(pkg, model, timeout=timeout)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    records_path = osp.join(args.out_dir, 'records.jsonl')
    done = {}
    if args.resume and osp.exists(records_path):
        with open(records_path) as f:
            for line in f:
                r = json.loads(line)
                done[r['path']] = r
    elif osp.exists(records_path):
        os.unlink(records_path)
    start = time.time()
    todo = plan(args, done)
    print(f'[zoo sweep] {len(todo)} configs to read', flush=True)
    models, pending = {}, []  # model key -> result; configs waiting on it
    bar = ProgressBar(len(todo))
    with open(records_path, 'a') as out:
        def emit(record):
            out.write(json.dumps(record) + '\n')
            out.flush()
        for pkg, path in todo:
            record, model = read_config(pkg, path)
            bar.update()
            if model is None:
                emit(record)
                continue
            pending.append(record)
            models.setdefault(record['model'], (pkg, model))
        # a resumed sweep checks each model once: configs of a model
        # checked before take its result (and say from which config)
        checked = reusable_results(done.values())
        for record in [r for r in pending if r['model'] in checked]:
            pending.remove(record)
            emit(dict(record, **checked[record['model']]))
            models.pop(record['model'], None)
        print(f'\n[zoo sweep] {len(models)} distinct models to check',
              flush=True)
        models = interleaved(models)
        jobs = [(pkg, m, args.timeout) for pkg, m in models.values()]
        waiting = {}
        for record in pending:
            waiting.setdefault(record['model'], []).append(record)
        bar = ProgressBar(len(jobs))
        ctx = mp.get_context('fork')
        with ctx.Pool(args.jobs, maxtasksperchild=20) as pool:
            # each model's configs are written as soon as it is checked
            for key, res in zip(models, pool.imap(_work, jobs)):
                for record in waiting[key]:
                    emit(dict(record, **res))
                bar.update()
    with open(records_path) as f:
        records = [json.loads(line) for line in f]
    minutes = (time.time() - start) / 60
    write_summary(args, records, minutes)


def write_summary(args, records, minutes):
    counts, reasons = summarize(records)
    lines = [f'Zoo sweep: {len(records)} configs, '
             f'{len({r.get("model") for r in records if r.get("model")})} '
             f'distinct models checked, {minutes:.1f} min '
             f'(--jobs {args.jobs}, '
             f'{"sample " + str(args.sample) if args.sample else "all"})',
             '', '| package | ' + ' | '.join(OUTCOMES) + ' |',
             '|---|' + '---|' * len(OUTCOMES)]
    for pkg, row in counts.items():
        lines.append(f'| {pkg} | ' + ' | '.join(str(row[o])
                                                 for o in OUTCOMES) + ' |')
    lines += ['', '| package | outcome | reason | configs |',
              '|---|---|---|---|']
    for (pkg, outcome, why), n in sorted(reasons.items(),
                                         key=lambda kv: -kv[1]):
        lines.append(f'| {pkg} | {outcome} | {why.replace("|", "/")} | '
                     f'{n} |')
    lines += ['', 'Wrong conversions:' if any(
        r['outcome'] == 'wrong' for r in records) else 'Wrong: none.']
    for r in records:
        if r['outcome'] == 'wrong':
            lines.append(f'- {r["config"]}: {r.get("wrong_layers")}')
    text = '\n'.join(lines) + '\n'
    atomic_write(osp.join(args.out_dir, 'summary.md'),
                 lambda f: f.write(text), mode='w')
    plot_summary(counts, osp.join(args.out_dir, 'summary.png'))
    print(text)


def plot_summary(counts, path):
    """Stacked bars: configs per outcome, one bar a package."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 3.5))
    left = [0] * len(counts)
    for outcome in OUTCOMES:
        widths = [row[outcome] for row in counts.values()]
        ax.barh(list(counts), widths, left=left, label=outcome)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel('stock configs')
    ax.legend(fontsize=7, ncol=4, loc='upper center',
              bbox_to_anchor=(0.5, -0.25))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
