"""Keep the per-image results of an mm test run, for paired intervals.

Every mmengine ``BaseMetric`` gathers one entry per image in
``process`` and hands the gathered list (all ranks, in dataset order,
padding dropped) to ``compute_metrics``; ``evaluate`` then clears it. So
the list is caught where it is complete and before it is gone: a
:class:`PerImageRecorder` wraps each metric's ``compute_metrics`` (on the
metric object only: the class and other runners are untouched) and turns
the list into the compact records of :mod:`.bootstrap` (a bool per crop,
marked detections, area histograms), not a copy of every prediction.

Known metrics: mmpretrain ``Accuracy`` (top-1), mmdet ``VOCMetric`` (mAP),
mmseg ``IoUMetric`` (mIoU); others are left alone (no records, no
interval). Under distributed testing only the main process computes
metrics, so only it holds records.
"""
import time
from typing import Callable, Dict, NamedTuple

from mmengine.hooks import Hook

from .bootstrap import (
    detection_records,
    miou,
    segmentation_records,
    top1,
    voc_map,
)

#: marks a metric object already wrapped (a runner tests several times)
_WRAPPED = '_fastsnn_per_image_recorder'


class MetricRecords(NamedTuple):
    """A reported metric's per-image records and the function that
    recomputes that metric from them (``metric_fn(records, counts)``)."""
    records: object
    metric_fn: Callable


def _kinds(metric):
    return {cls.__name__ for cls in type(metric).__mro__}


def records_of(metric, results) -> Dict[str, MetricRecords]:
    """The records an mm metric's gathered ``results`` hold, keyed by the
    name the metric reports (prefix included, e.g. ``accuracy/top1``);
    empty for a metric kind, or setting, with no per-image form here."""
    if not len(results):
        return {}
    kinds = _kinds(metric)
    if 'Accuracy' in kinds:
        named = _accuracy_records(metric, results)
    elif 'VOCMetric' in kinds:
        named = _voc_records(metric, results)
    elif 'IoUMetric' in kinds:
        named = _iou_records(metric, results)
    else:
        named = {}
    prefix = getattr(metric, 'prefix', None)
    return {f'{prefix}/{k}' if prefix else k: v for k, v in named.items()}


def _accuracy_records(metric, results):
    """Per crop: correct at top-1, as mmpretrain's ``Accuracy.calculate``
    decides it (top-k of the scores, a score above each threshold)."""
    import torch
    topk = tuple(getattr(metric, 'topk', (1, )))
    if 1 not in topk:
        return {}
    target = torch.cat([r['gt_label'] for r in results]).view(-1)
    if 'pred_score' not in results[0]:
        pred = torch.cat([r['pred_label'] for r in results]).view(-1)
        return {'top1': MetricRecords((pred == target).numpy(), top1)}
    scores = torch.stack([r['pred_score'] for r in results])
    best_score, best_label = scores.topk(max(topk), dim=1)
    correct = best_label[:, 0] == target
    thrs = tuple(getattr(metric, 'thrs', (0., )))
    named = {}
    for thr in thrs:
        name = 'top1'
        if len(thrs) > 1:
            name += '_no-thr' if thr is None else f'_thr-{thr:.2f}'
        hit = correct if thr is None else correct & (best_score[:, 0] > thr)
        named[name] = MetricRecords(hit.numpy(), top1)
    return named


def _voc_records(metric, results):
    """Marked detections per image and class (mAP only; per-scale mAP,
    ``scale_ranges``, has no per-image form here)."""
    if metric.metric != 'mAP' or metric.scale_ranges is not None:
        return {}
    annotations, detections = zip(*results)
    records = detection_records(annotations, detections,
                                iou_thrs=tuple(metric.iou_thrs),
                                eval_mode=metric.eval_mode,
                                use_legacy_coordinate=True)
    return {'mAP': MetricRecords(records, voc_map)}


def _iou_records(metric, results):
    if metric.format_only or 'mIoU' not in metric.metrics:
        return {}
    records = segmentation_records(results, metric.nan_to_num)
    return {'mIoU': MetricRecords(records, miou)}


class PerImageRecorder:
    """Catch per-image records from the metrics of mmengine evaluators.

    ``attach(evaluator)`` once; after each evaluation :meth:`take` gives
    ``{metric name: MetricRecords}`` of that evaluation. ``seconds`` adds
    up the time spent building records (the cost a user should see).
    """

    def __init__(self):
        self.records: Dict[str, MetricRecords] = {}
        self.seconds = 0.0

    def attach(self, evaluator) -> 'PerImageRecorder':
        for metric in evaluator.metrics:
            if getattr(metric, _WRAPPED, None) is self:
                continue
            self._wrap(metric)
        return self

    def _wrap(self, metric):
        compute = metric.compute_metrics

        def compute_metrics(results):
            out = compute(results)
            start = time.perf_counter()
            self.records.update(records_of(metric, results))
            self.seconds += time.perf_counter() - start
            return out

        metric.compute_metrics = compute_metrics
        setattr(metric, _WRAPPED, self)

    def take(self) -> Dict[str, MetricRecords]:
        """The records caught since the last call (then forgotten)."""
        records, self.records = self.records, {}
        return records


class PerImageRecordHook(Hook):
    """Attach a :class:`PerImageRecorder` to the runner's test evaluator
    when a test starts (the test loop, with its evaluator, is only built
    by ``runner.test()``). ``runner.register_hook(hook)``; read
    ``hook.recorder.take()`` after each ``runner.test()``."""
    priority = 'LOWEST'

    def __init__(self, recorder: PerImageRecorder = None):
        self.recorder = recorder or PerImageRecorder()

    def before_test(self, runner) -> None:
        self.recorder.attach(runner.test_loop.evaluator)


def num_images(records: MetricRecords) -> int:
    """How many images ``records`` hold."""
    return len(records.records)


__all__ = ['MetricRecords', 'PerImageRecorder', 'PerImageRecordHook',
           'records_of', 'num_images']
