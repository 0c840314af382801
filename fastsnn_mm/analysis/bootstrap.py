"""Paired bootstrap intervals: how much an SNN loses against its QANN, with
the uncertainty that comes from the finite test set.

A QANN and its SNN are tested on the same images, so their difference is
judged image by image (paired): both metrics are recomputed on the same
resample of image indices, and the interval is the percentiles of the
difference over the resamples. Pairing cancels what the two models share
(hard images are hard for both), so the interval is much narrower than two
separate intervals would suggest.

A resample is handed to a metric as ``counts``: how many times each image
was drawn (``np.bincount`` of the drawn indices). Every metric here is a
sum over images before its last step (correct crops, boxes on a
precision-recall curve, pixel histograms), so weighting image ``i`` by
``counts[i]`` gives exactly the metric of the resample with its repeated
images, without copying any per-image data: 1000 resamples of a VOC test
set take seconds.

Per-image records (what the metrics below read):

- top-1: a bool array, one entry per image: prediction correct;
- VOC mAP: :class:`DetectionRecords` (:func:`detection_records` builds it
  from mmdet's per-image annotations and detections);
- mIoU: :class:`SegmentationRecords`, mmseg's four per-image area
  histograms.

Only numpy here; mmdet is imported when detection records are built.
"""
import numbers
from typing import Callable, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..errors import BadArgumentError, check_int

#: the seed of :func:`paired_interval` unless told: the same records give
#: the same interval on every run
DEFAULT_SEED = 0
#: resamples unless told (percentiles of 1000 differences vary by about a
#: tenth of the interval's width from seed to seed)
DEFAULT_RESAMPLES = 1000
#: what :func:`verdict` answers
VERDICTS = ('met', 'missed', 'undecided')


class Interval(NamedTuple):
    """``diff``: metric of the first model minus the second on all images;
    ``lo``, ``hi``: the percentile interval of that difference."""
    diff: float
    lo: float
    hi: float


# -- top-1 -----------------------------------------------------------------
def top1(correct, counts=None) -> float:
    """Top-1 accuracy in percent (as mmpretrain reports it) of the images
    weighted by ``counts`` (all images once when None)."""
    correct = np.asarray(correct, dtype=np.float64)
    if counts is None:
        return float(100.0 * correct.mean()) if correct.size else np.nan
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return float(100.0 * (counts @ correct) / total) if total else np.nan


# -- segmentation: mIoU ----------------------------------------------------
class SegmentationRecords(NamedTuple):
    """mmseg's per-image histograms over classes (``IoUMetric.results``),
    each of shape (images, classes); ``nan_to_num`` as the metric's."""
    intersect: np.ndarray
    union: np.ndarray
    pred: np.ndarray
    label: np.ndarray
    nan_to_num: Optional[float] = None

    def __len__(self):  # images, not fields: what a resample draws from
        return len(self.intersect)


def segmentation_records(results, nan_to_num=None) -> SegmentationRecords:
    """Records from mmseg ``IoUMetric`` results: one tuple of four
    histograms (tensors or arrays) per image."""
    if not len(results):
        raise BadArgumentError('no segmentation results to build records '
                               'from: test at least one image')
    columns = [np.stack([_numpy(r[j]) for r in results]).astype(np.float64)
               for j in range(4)]
    return SegmentationRecords(*columns, nan_to_num=nan_to_num)


def miou(records: SegmentationRecords, counts=None) -> float:
    """mIoU in percent, as mmseg's ``IoUMetric`` computes it, of the images
    weighted by ``counts``: histograms summed, IoU per class, mean over
    the classes present (NaN IoU of a class with no pixels is skipped).

    Sums are in float64: mmseg sums float32 histograms and rounds the
    reported mIoU to 2 decimals, so the two agree to that rounding.
    """
    if counts is None:
        inter, union = records.intersect.sum(0), records.union.sum(0)
    else:
        counts = np.asarray(counts, dtype=np.float64)
        inter, union = counts @ records.intersect, counts @ records.union
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = inter / union
    if records.nan_to_num is not None:
        iou = np.nan_to_num(iou, nan=records.nan_to_num)
    if np.all(np.isnan(iou)):
        return np.nan
    return float(np.nanmean(iou) * 100.0)


# -- detection: VOC mAP ----------------------------------------------------
class ClassCurve(NamedTuple):
    """One class's detections over the whole test set at one IoU
    threshold, sorted by descending score once: ``image`` (which image
    each came from), ``tp`` and ``fp`` (0/1, as mmdet's ``tpfp_default``
    marks them; both 0 for a detection on an ignored box)."""
    image: np.ndarray
    tp: np.ndarray
    fp: np.ndarray


class DetectionRecords(NamedTuple):
    """What VOC mAP needs per image, precomputed so a resample only
    reweights: ``gts`` (images, classes) counts the non-ignored ground
    truths; ``curves[t][c]`` is the :class:`ClassCurve` of class ``c`` at
    ``iou_thrs[t]``."""
    gts: np.ndarray
    curves: Tuple[Tuple[ClassCurve, ...], ...]
    iou_thrs: Tuple[float, ...]
    eval_mode: str = 'area'

    def __len__(self):  # images, not fields: what a resample draws from
        return len(self.gts)


def detection_records(annotations: Sequence[dict],
                      detections: Sequence[Sequence[np.ndarray]],
                      iou_thrs=(0.5, ), eval_mode='area',
                      use_legacy_coordinate=True) -> DetectionRecords:
    """Records from what mmdet's ``VOCMetric`` keeps per image (its
    ``results`` are ``(annotation, detections)`` pairs; the arguments are
    those of ``mmdet.evaluation.functional.eval_map``).

    Each image's true and false positives are found once, by mmdet's own
    ``tpfp_default``: matching a detection to a ground truth only looks at
    its own image, so the marks hold in any resample. The detections of a
    class are then sorted by score the way ``eval_map`` sorts them, so
    :func:`voc_map` on all images gives ``eval_map``'s mAP.
    """
    from mmdet.evaluation.functional.mean_ap import tpfp_default
    if len(annotations) != len(detections) or not len(annotations):
        raise BadArgumentError(
            f'{len(annotations)} annotations and {len(detections)} '
            'detection lists: give one of each per tested image (at least '
            'one image)')
    if eval_mode not in ('area', '11points'):
        raise BadArgumentError(f"eval_mode must be 'area' or '11points', "
                               f'got {eval_mode!r}')
    num_classes = len(detections[0])
    gts = np.zeros((len(annotations), num_classes), dtype=np.int64)
    per_class = []  # (gt boxes, ignored boxes) per image, per class
    for c in range(num_classes):
        boxes = []
        for i, ann in enumerate(annotations):
            gt = ann['bboxes'][ann['labels'] == c]
            if ann.get('labels_ignore') is not None:
                ignored = ann['bboxes_ignore'][ann['labels_ignore'] == c]
            else:
                ignored = np.empty((0, 4), dtype=np.float32)
            gts[i, c] = len(gt)
            boxes.append((gt, ignored))
        per_class.append(boxes)
    curves = []
    for thr in iou_thrs:
        at_thr = []
        for c in range(num_classes):
            images, tps, fps, scores = [], [], [], []
            for i, dets in enumerate(detections):
                det = dets[c]
                if not len(det):
                    continue
                gt, ignored = per_class[c][i]
                tp, fp = tpfp_default(det, gt, ignored, thr, None,
                                      use_legacy_coordinate)
                images.append(np.full(len(det), i, dtype=np.int64))
                tps.append(tp[0])
                fps.append(fp[0])
                scores.append(det[:, -1])
            if images:
                # eval_map's sort of the same concatenation: same order
                order = np.argsort(-np.concatenate(scores))
                at_thr.append(ClassCurve(np.concatenate(images)[order],
                                         np.concatenate(tps)[order],
                                         np.concatenate(fps)[order]))
            else:
                empty = np.zeros(0, dtype=np.float32)
                at_thr.append(ClassCurve(np.zeros(0, dtype=np.int64), empty,
                                         empty))
        curves.append(tuple(at_thr))
    return DetectionRecords(gts, tuple(curves), tuple(iou_thrs), eval_mode)


def voc_map(records: DetectionRecords, counts=None) -> float:
    """VOC mAP (a fraction, as mmdet reports it; the mean over
    ``iou_thrs``) of the images weighted by ``counts``.

    A detection of an image drawn k times stands for k tied detections;
    a run of tied identical marks gives the same precision envelope as
    one step k high, so weighting the cumulative sums equals re-running
    ``eval_map`` on the resample with its repeated images. Classes with
    no ground truth in the resample are left out of the mean, as
    ``eval_map`` leaves them out.
    """
    n = len(records)
    weights = (np.ones(n, dtype=np.int64) if counts is None
               else np.asarray(counts, dtype=np.int64))
    gts = weights @ records.gts
    eps = np.finfo(np.float32).eps
    maps = []
    for curves in records.curves:
        aps = []
        for c, curve in enumerate(curves):
            if gts[c] <= 0:
                continue
            w = weights[curve.image]
            # integer sums, exact in float32 as eval_map's are
            tp = np.cumsum(w * curve.tp).astype(np.float32)
            fp = np.cumsum(w * curve.fp).astype(np.float32)
            recall = tp / np.maximum(np.float64(gts[c]), eps)
            precision = tp / np.maximum(tp + fp, eps)
            aps.append(_average_precision(recall, precision,
                                          records.eval_mode))
        maps.append(np.array(aps, dtype=np.float32).mean().item()
                    if aps else 0.0)
    return sum(maps) / len(maps)


_ELEVEN_POINTS = np.arange(0, 1 + 1e-3, 0.1)


def _average_precision(recall, precision, mode) -> np.float32:
    """mmdet's ``average_precision`` for one curve, vectorized (its
    envelope is a Python loop over the detections: too slow to run a
    thousand times on a VOC test set). Same float32 result."""
    if mode == 'area':
        mrec = np.concatenate(([0.0], recall, [1.0]))
        mpre = np.concatenate(([0.0], precision, [0.0]))
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        ind = np.flatnonzero(mrec[1:] != mrec[:-1])
        return np.float32(np.sum((mrec[ind + 1] - mrec[ind]) *
                                 mpre[ind + 1]))
    # 11 points: the best precision at recall >= each point (recall only
    # grows along the curve, so that is a suffix maximum)
    best = np.maximum.accumulate(precision[::-1])[::-1]
    first = np.searchsorted(recall, _ELEVEN_POINTS, side='left')
    ap = np.float32(0)
    for k in first:  # float32 sum in mmdet's order
        ap += best[k] if k < len(best) else np.float32(0)
    return ap / np.float32(11)


# -- the interval and its verdict ------------------------------------------
def resample_counts(num_images: int, resamples: int, seed=DEFAULT_SEED):
    """Yield ``resamples`` arrays of how often each of ``num_images``
    images is drawn when ``num_images`` indices are drawn with
    replacement; the same seed yields the same draws."""
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield np.bincount(rng.integers(0, num_images, num_images),
                          minlength=num_images)


def paired_interval(records_a, records_b, metric_fn: Callable,
                    n: int = DEFAULT_RESAMPLES, seed=DEFAULT_SEED,
                    level: float = 0.95) -> Interval:
    """``metric_fn(a) - metric_fn(b)`` on all images, with the ``level``
    percentile interval of that difference over ``n`` paired resamples.

    ``metric_fn(records, counts)`` is one of :func:`top1`,
    :func:`voc_map`, :func:`miou` (or any metric that weights images by
    ``counts``). Both models see the same draw of images in every
    resample: that is what makes the interval paired. Records of a model
    against themselves give exactly (0, 0, 0). A resample on which a
    metric is undefined (NaN: e.g. no pixel of any class) makes the
    interval NaN, which :func:`verdict` calls undecided.
    """
    n = check_int('n (bootstrap resamples)', n, 1,
                  hint='use 1000; no interval at all needs no call')
    if not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise BadArgumentError(f'level must be a fraction in (0, 1), such '
                               f'as 0.95, got {level!r}')
    size = len(records_a)
    if len(records_b) != size:
        raise BadArgumentError(
            f'the records hold {size} and {len(records_b)} images: a paired '
            'interval needs both models tested on the same images, in the '
            'same order')
    if not size:
        raise BadArgumentError('no images in the records: test at least one')
    diff = metric_fn(records_a, None) - metric_fn(records_b, None)
    diffs = np.array([metric_fn(records_a, counts) -
                      metric_fn(records_b, counts)
                      for counts in resample_counts(size, n, seed)])
    tail = 50.0 * (1.0 - level)
    if np.isnan(diffs).any():
        lo = hi = np.nan
    else:
        lo, hi = np.percentile(diffs, [tail, 100.0 - tail])
    return Interval(float(diff), float(lo), float(hi))


def verdict(lo: float, hi: float, bar: float) -> str:
    """Whether a model kept within ``bar`` of another, given the interval
    [lo, hi] of (model - other) in the metric's units (points of top-1 or
    mIoU, a fraction of mAP): 'met' when the whole interval lies at or
    above ``-bar`` (any gain is fine), 'missed' when it lies wholly below
    ``-bar``, 'undecided' when it straddles ``-bar`` (more test images,
    not a verdict, would settle it) or is NaN.
    """
    if (isinstance(bar, bool) or not isinstance(bar, numbers.Real)
            or not bar >= 0):
        raise BadArgumentError(f'bar must be a number >= 0 (the largest '
                               f'drop accepted, in the metric\'s units), '
                               f'got {bar!r}')
    if lo is None or hi is None or np.isnan(lo) or np.isnan(hi):
        return 'undecided'
    if lo > hi:
        raise BadArgumentError(f'interval [{lo}, {hi}] has lo > hi: pass '
                               'the lower end first')
    if lo >= -bar:
        return 'met'
    if hi < -bar:
        return 'missed'
    return 'undecided'


def _numpy(x) -> np.ndarray:
    return x.numpy() if hasattr(x, 'numpy') else np.asarray(x)
