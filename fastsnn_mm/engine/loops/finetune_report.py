"""What a fine-tuning run leaves behind: the per-layer mismatch before and
after in the log, ``layerwise_finetune.json`` and the tuned SNN checkpoint
(``snn_finetuned_<neuron>_T<T>.pth``, see
:mod:`fastsnn_mm.engine.snn_checkpoint`).

The reporting split (``report_on``) judged nothing, so its differences
are what a reader should trust; but a difference of a few images on a
small split is noise. Every report of that split therefore keeps the
per-image records of its metrics (:class:`~fastsnn_mm.analysis.per_image.
PerImageRecorder`, attached for that evaluation only), the QANN is tested
once on the same split before tuning, and each later report gets the
tuned - untuned SNN and SNN - QANN differences with their 95 % paired
bootstrap intervals (:func:`~fastsnn_mm.analysis.bootstrap.
paired_interval`: both models' metrics recomputed on the same resample of
the images). The untuned SNN's and the QANN's records are kept in the
progress checkpoint, so a resumed run still has its reference.
"""
import contextlib
import numbers
import os.path as osp
import time

import numpy as np
import torch

from ...analysis import per_image
from ...analysis.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    ClassCurve,
    DetectionRecords,
    SegmentationRecords,
    miou,
    paired_interval,
    top1,
    voc_map,
)
from ...analysis.per_image import MetricRecords, PerImageRecorder
from ..snn_checkpoint import save_snn_checkpoint
from .finetune_progress import REPORT_FILE, write_json
from .judging_data import split_configured

#: the intervals' level (the bootstrap's resamples and seed: its defaults)
LEVEL = 0.95
#: names of the two differences in the JSON
TUNED, VS_QANN = 'tuned_minus_untuned', 'snn_minus_qann'
_NAN = (float('nan'), float('nan'))


def _mean(stats, i):
    return sum(v[i] for v in stats.values()) / max(len(stats), 1)


def mismatch_lines(before, after):
    """The log block: each neuron layer's count mismatch before -> after,
    with the inherited part in brackets, and the means."""
    lines = [f'  {name}: {before.get(name, _NAN)[0]:.4f} -> '
             f'{after[name][0]:.4f} (inherited {before.get(name, _NAN)[1]:.4f}'
             f' -> {after[name][1]:.4f})' for name in after]
    return ('count mismatch per neuron layer (held-out), before -> after '
            '(in brackets: the part the layer\'s summed input already '
            'carried from earlier layers):\n' + '\n'.join(lines) +
            f'\n  mean: {_mean(before, 0):.4f} -> {_mean(after, 0):.4f} '
            f'(inherited {_mean(before, 1):.4f} -> {_mean(after, 1):.4f})')


def report_data(settings, snn_cfg, progress, metric_key, after, extra):
    """The JSON report: settings, metrics, per-layer mismatch, groups."""
    before = progress.layers_before
    return dict(
        timesteps=snn_cfg['timesteps'], neuron=snn_cfg['neuron'],
        surrogate=settings.surrogate, lr_candidates=settings.lr_candidates,
        iters_per_layer=settings.iters_per_layer, metric_key=metric_key,
        metric_qann=progress.metric_qann,
        metric_before=progress.metric_initial,
        metric_after=progress.metric,
        mean_mismatch_before=_mean(before, 0),
        mean_mismatch_after=_mean(after, 0),
        mean_inherited_before=_mean(before, 1),
        mean_inherited_after=_mean(after, 1),
        joint_iters=settings.joint_iters, joint_lr=settings.joint_lr,
        reported_intervals=progress.reported_intervals,
        interval_method=interval_method(progress),
        **extra,
        layers=[dict(layer=n, mismatch_before=before.get(n, _NAN)[0],
                     mismatch_after=after[n][0],
                     inherited_before=before.get(n, _NAN)[1],
                     inherited_after=after[n][1]) for n in after],
        groups=progress.rows)


def write_report(runner, model, settings, progress, metric_key, after,
                 extra=None):
    """Log the mismatch block and the judging metric, write the JSON and
    the tuned SNN checkpoint; returns the checkpoint's path."""
    log = runner.logger.info
    log(mismatch_lines(progress.layers_before, after))
    if progress.metric_initial is not None:
        qann = progress.metric_qann
        log(f'held-out {metric_key}: {progress.metric_initial:.4f} -> '
            f'{progress.metric:.4f} (QANN '
            f'{float("nan") if qann is None else qann:.4f})')
    table = interval_table(progress, ((extra or {}).get('reported_on')
                                      or {}).get('after'))
    if table:
        log(table)
    write_json(osp.join(runner.work_dir, REPORT_FILE), report_data(
        settings, model.snn_cfg, progress, metric_key, after, extra or {}))
    path = save_snn_checkpoint(model, runner.work_dir, epoch=0,
                               iteration=progress.iter,
                               prefix='snn_finetuned', layerwise=progress.rows)
    log(f'saved fine-tuned SNN checkpoint to {path}')
    return path


def evaluate_split(runner, split):
    """The stock ``split`` loop's metrics (numbers as floats, for JSON and
    checkpoints); None when the config has no such split."""
    return report_split(runner, split)[0]


def report_split(runner, split, model=None):
    """(metrics, per-image records, seconds spent keeping them) of the
    ``split`` loop; (None, {}, 0) when the config has no such split.

    ``model`` None: the stock loop with its hooks (the SNN, as before).
    A model (the QANN): its ``test_step`` (``val_step`` on the val split)
    on the loop's dataloader through the loop's evaluator, hooks left out
    (they watch the runner's model). Records are caught for this
    evaluation only: the recorder is taken off the metrics after it, so
    judging through the same evaluator keeps none.
    """
    if not split_configured(runner, split):
        return None, {}, 0.0
    loop = runner.val_loop if split == 'val' else runner.test_loop
    recorder = PerImageRecorder()
    with _recording(loop.evaluator, recorder):
        metrics = loop.run() if model is None else \
            _evaluate_model(loop, model, split)
    metrics = {k: float(v) if isinstance(v, numbers.Real) else v
               for k, v in metrics.items()}
    return metrics, recorder.take(), recorder.seconds


def _evaluate_model(loop, model, split):
    step = model.val_step if split == 'val' else model.test_step
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for data in loop.dataloader:
                loop.evaluator.process(data_samples=step(data),
                                       data_batch=data)
    finally:
        model.train(training)
    return loop.evaluator.evaluate(len(loop.dataloader.dataset))


_ABSENT = object()
#: what PerImageRecorder.attach sets on a metric object
_SET_BY_RECORDER = ('compute_metrics', per_image._WRAPPED)


@contextlib.contextmanager
def _recording(evaluator, recorder):
    """``recorder`` attached to ``evaluator``'s metrics, then taken off."""
    saved = [(m, {k: vars(m).get(k, _ABSENT) for k in _SET_BY_RECORDER})
             for m in evaluator.metrics]
    recorder.attach(evaluator)
    try:
        yield recorder
    finally:
        for metric, attrs in saved:
            for k, v in attrs.items():
                if v is _ABSENT:
                    vars(metric).pop(k, None)
                else:
                    setattr(metric, k, v)


# -- per-image records kept in the progress checkpoint ---------------------
_METRIC_FNS = {'top1': top1, 'mIoU': miou, 'mAP': voc_map}


def plain_records(records):
    """{metric key: MetricRecords} as plain dicts of numpy arrays (what
    the safe checkpoint loader reads back); metrics of another kind are
    left out."""
    out = {}
    for key, got in records.items():
        r = got.records
        if got.metric_fn is miou and isinstance(r, SegmentationRecords):
            out[key] = dict(kind='mIoU', **r._asdict())
        elif got.metric_fn is voc_map and isinstance(r, DetectionRecords):
            out[key] = dict(kind='mAP', gts=r.gts,
                            iou_thrs=[float(t) for t in r.iou_thrs],
                            eval_mode=r.eval_mode,
                            curves=[[list(c) for c in at]
                                    for at in r.curves])
        elif got.metric_fn is top1:
            out[key] = dict(kind='top1', correct=np.asarray(r, dtype=bool))
    return out


def restore_records(plain):
    """What :func:`plain_records` wrote, as {metric key: MetricRecords}."""
    out = {}
    for key, d in (plain or {}).items():
        kind = d['kind']
        if kind == 'mIoU':
            r = SegmentationRecords(*(d[f] for f in (
                'intersect', 'union', 'pred', 'label')),
                nan_to_num=d['nan_to_num'])
        elif kind == 'mAP':
            r = DetectionRecords(
                d['gts'], tuple(tuple(ClassCurve(*c) for c in at)
                                for at in d['curves']),
                tuple(d['iou_thrs']), d['eval_mode'])
        else:
            r = np.asarray(d['correct'], dtype=bool)
        out[key] = MetricRecords(r, _METRIC_FNS[kind])
    return out


def keep_report(progress, label, records, seconds):
    """Keep what one report of the reporting split gives the intervals.

    ``label`` 'qann' (the QANN, before tuning) and 'before' (the untuned
    SNN): their records are kept as the references; 'before' and every
    later label (a stage, 'after'): the differences of that report to the
    references, with intervals, go to ``progress.reported_intervals``.
    ``seconds``: what keeping ``records`` cost.
    """
    store = progress.report_records
    add_seconds(store, 'records', seconds)
    if label in ('qann', 'before'):
        store[label] = plain_records(records)
    if label != 'qann':
        got = split_intervals(records, store, untuned=label != 'before')
        if got:
            progress.reported_intervals[label] = got


def add_seconds(store, what, seconds):
    """Count ``seconds`` spent on ``what`` in ``store`` (the progress's
    ``report_records``), summed over resumed runs."""
    spent = store.setdefault('seconds', {})
    spent[what] = spent.get(what, 0.0) + float(seconds)


def _interval(a, b):
    diff, lo, hi = paired_interval(a.records, b.records, a.metric_fn,
                                   DEFAULT_RESAMPLES, DEFAULT_SEED, LEVEL)
    return dict(diff=diff, ci95=[lo, hi])


def split_intervals(records, store, untuned=True):
    """metric key -> ``images`` and the differences of the model whose
    per-image ``records`` these are: tuned - untuned SNN (when
    ``untuned``; the untuned SNN's records in ``store``) and SNN - QANN
    (the QANN's), each ``dict(diff, ci95=[lo, hi])`` in the metric's
    reported units; a difference whose reference has no records of that
    metric, or other images, is left out."""
    start = time.perf_counter()
    refs = [(TUNED, restore_records(store.get('before')) if untuned
             else {}), (VS_QANN, restore_records(store.get('qann')))]
    out = {}
    for key, mine in records.items():
        row = {}
        for name, ref in refs:
            if key in ref and len(ref[key].records) == len(mine.records):
                row[name] = _interval(mine, ref[key])
        if row:
            out[key] = dict(images=len(mine.records), **row)
    add_seconds(store, 'bootstrap', time.perf_counter() - start)
    return out


def interval_method(progress):
    """How the intervals were made, and what they cost (for the JSON)."""
    spent = progress.report_records.get('seconds', {})
    return dict(
        level=LEVEL, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED,
        paired='both models scored on the same resample of the reporting '
        'split\'s images',
        bootstrap_seconds=spent.get('bootstrap', 0.0),
        record_seconds=spent.get('records', 0.0),
        qann_test_seconds=spent.get('qann_test', 0.0))


def _ci(d):
    if d is None:
        return '-'
    lo, hi = d['ci95']
    return f'{d["diff"]:+.4f} [{lo:+.4f}, {hi:+.4f}]'


def interval_table(progress, after=None):
    """The log block of the intervals: one line per report and metric
    (``after``: the final report's metrics); '' when no report kept
    records."""
    intervals = progress.reported_intervals
    if not intervals:
        return ''
    metrics = dict(progress.reported_stages, before=progress.reported_before,
                   after=after)
    lines, images = [], set()
    for when, per_key in intervals.items():
        for key, row in per_key.items():
            value = (metrics.get(when) or {}).get(key)
            value = '-' if value is None else f'{value:.4f}'
            images.add(row['images'])
            lines.append(f'  {when:<7} {key}: {value:>8} | tuned - untuned '
                         f'{_ci(row.get(TUNED)):<30} | SNN - QANN '
                         f'{_ci(row.get(VS_QANN))}')
    m = interval_method(progress)
    counts = '/'.join(map(str, sorted(images)))
    return (f'reporting split, differences with their {LEVEL:.0%} paired '
            f'bootstrap intervals ({m["resamples"]} resamples of the same '
            f'{counts} images, seed {m["seed"]}; cost '
            f'{m["bootstrap_seconds"]:.2f} s resampling, '
            f'{m["record_seconds"]:.2f} s keeping per-image records, '
            f'{m["qann_test_seconds"]:.2f} s testing the QANN):\n'
            + '\n'.join(lines))
