"""Paired bootstrap intervals of SNN - QANN (fastsnn_mm.analysis.bootstrap),
the per-image records caught from mm metrics (analysis.per_image), and the
columns tools/test.py --compare prints with them.

All but the last test run on tiny synthetic records in well under a second;
the last trains a tiny classifier for one epoch and runs the tool.
"""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, tiny_cls_config

from fastsnn_mm.analysis import (
    PerImageRecorder,
    detection_records,
    miou,
    paired_interval,
    segmentation_records,
    top1,
    verdict,
    voc_map,
)
from fastsnn_mm.errors import BadArgumentError

NUM_CLASSES = 3


def _boxes(rng, n):
    xy = rng.uniform(0, 60, (n, 2))
    wh = rng.uniform(5, 30, (n, 2))
    return np.hstack([xy, xy + wh]).astype(np.float32)


def _detection_set(seed, images=12, noise=1.5):
    """Per-image VOC annotations (some ignored boxes) and detections:
    jittered copies of the ground truths plus random false boxes."""
    rng = np.random.default_rng(seed)
    anns, dets = [], []
    for _ in range(images):
        k = int(rng.integers(0, 4))
        gt, labels = _boxes(rng, k), rng.integers(0, NUM_CLASSES, k)
        anns.append(dict(bboxes=gt, labels=labels,
                         bboxes_ignore=_boxes(rng, 1),
                         labels_ignore=rng.integers(0, NUM_CLASSES, 1)))
        per_class = []
        for c in range(NUM_CLASSES):
            hit = gt[labels == c] + rng.normal(0, noise, (int((labels == c)
                                                              .sum()), 4))
            boxes = np.vstack([hit, _boxes(rng, int(rng.integers(0, 3)))])
            scores = rng.uniform(0, 1, (len(boxes), 1))
            per_class.append(np.hstack([boxes, scores]).astype(np.float32))
        dets.append(per_class)
    return anns, dets


def _seg_results(seed, images=10, classes=4):
    from mmseg.evaluation import IoUMetric
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(images):
        label = torch.from_numpy(rng.integers(0, classes, (8, 8)))
        pred = torch.where(torch.from_numpy(rng.random((8, 8)) < 0.7),
                           label, torch.from_numpy(
                               rng.integers(0, classes, (8, 8))))
        out.append(IoUMetric.intersect_and_union(pred, label, classes, 255))
    return out


@pytest.fixture(scope='module')
def det_records():
    anns, dets = _detection_set(0)
    return detection_records(anns, dets, iou_thrs=(0.5, 0.75))


@pytest.fixture(scope='module')
def seg_records():
    return segmentation_records(_seg_results(0))


def _records(kind, det_records, seg_records):
    if kind == 'top1':
        return np.random.default_rng(0).random(200) < 0.8, top1
    if kind == 'mAP':
        return det_records, voc_map
    return seg_records, miou


@pytest.mark.parametrize('kind', ['top1', 'mAP', 'mIoU'])
def test_a_model_against_itself_is_exactly_zero(kind, det_records,
                                                seg_records):
    records, metric_fn = _records(kind, det_records, seg_records)
    assert paired_interval(records, records, metric_fn, 200) == (0, 0, 0)


@pytest.mark.parametrize('kind', ['top1', 'mAP', 'mIoU'])
def test_the_seed_makes_the_interval_repeatable(kind, det_records,
                                                seg_records):
    records, metric_fn = _records(kind, det_records, seg_records)
    other = _other(kind, records)
    a = paired_interval(other, records, metric_fn, 100, seed=5)
    assert paired_interval(other, records, metric_fn, 100, seed=5) == a
    assert paired_interval(other, records, metric_fn, 100, seed=6) != a
    assert a.lo <= a.hi


def _other(kind, records):
    """A second model on the same images, a little worse."""
    if kind == 'top1':
        flipped = records.copy()
        flipped[::7] = ~flipped[::7]
        return flipped
    if kind == 'mAP':
        return detection_records(*_detection_set(0, noise=4.0),
                                 iou_thrs=(0.5, 0.75))
    return segmentation_records(_seg_results(1))


def test_a_known_share_of_flipped_crops_is_covered():
    """500 crops; the second model's label is wrong on a known 10% where
    the first was right: the difference is -10 points, and the interval
    covers it with about the binomial width (2 * 1.96 * sqrt(.1*.9/500))."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 500)
    pred_a = np.where(rng.random(500) < 0.85, labels, (labels + 1) % 10)
    right = np.flatnonzero(pred_a == labels)
    flip = rng.choice(right, 50, replace=False)
    pred_b = pred_a.copy()
    pred_b[flip] = (labels[flip] + 3) % 10
    diff, lo, hi = paired_interval(pred_b == labels, pred_a == labels, top1)
    assert diff == pytest.approx(-10.0)
    assert lo < -10.0 < hi
    width = 2 * 1.96 * np.sqrt(0.1 * 0.9 / 500) * 100
    assert 0.75 * width < hi - lo < 1.25 * width
    assert verdict(lo, hi, bar=15.0) == 'met'
    assert verdict(lo, hi, bar=5.0) == 'missed'
    assert verdict(lo, hi, bar=10.0) == 'undecided'


def test_verdict_is_three_valued():
    assert verdict(-0.4, 0.3, bar=0.5) == 'met'
    assert verdict(0.1, 0.3, bar=0.0) == 'met'  # a gain
    assert verdict(-0.9, -0.6, bar=0.5) == 'missed'
    assert verdict(-0.7, 0.2, bar=0.5) == 'undecided'
    assert verdict(float('nan'), float('nan'), bar=0.5) == 'undecided'
    for bar in (-1.0, 'half', None):
        with pytest.raises(BadArgumentError, match='bar must be a number'):
            verdict(-0.1, 0.1, bar)
    with pytest.raises(BadArgumentError, match='lower end first'):
        verdict(0.2, -0.2, bar=0.5)


def test_bad_arguments_are_named():
    correct = np.ones(10, dtype=bool)
    with pytest.raises(BadArgumentError, match='resamples.*>= 1'):
        paired_interval(correct, correct, top1, n=0)
    with pytest.raises(BadArgumentError, match='same images'):
        paired_interval(correct, correct[:5], top1)
    with pytest.raises(BadArgumentError, match='level'):
        paired_interval(correct, correct, top1, level=95)


@pytest.mark.parametrize('mode', ['area', '11points'])
def test_map_is_mmdets_and_a_resample_is_its_repeated_images(mode):
    """On all images :func:`voc_map` is ``eval_map``'s mAP; on a resample
    (counts) it is ``eval_map`` of the resample's images, repeats and all:
    the weighting trick is exact."""
    from mmdet.evaluation.functional import eval_map
    anns, dets = _detection_set(2, images=15)
    thrs = (0.5, 0.7)
    records = detection_records(anns, dets, iou_thrs=thrs, eval_mode=mode)

    def mmdet_map(index):
        return np.mean([eval_map([dets[i] for i in index],
                                 [anns[i] for i in index], iou_thr=t,
                                 eval_mode=mode, use_legacy_coordinate=True,
                                 nproc=1, logger='silent')[0]
                        for t in thrs])

    assert voc_map(records) == pytest.approx(mmdet_map(range(15)), abs=1e-7)
    index = np.random.default_rng(3).integers(0, 15, 15)
    counts = np.bincount(index, minlength=15)
    assert voc_map(records, counts) == pytest.approx(mmdet_map(index),
                                                     abs=1e-6)


def _accuracy_run():
    from mmpretrain.evaluation import Accuracy
    metric = Accuracy(topk=(1, ))
    rng = np.random.default_rng(4)
    samples = [dict(pred_score=torch.from_numpy(rng.random(5)).float(),
                    gt_label=torch.tensor([int(rng.integers(0, 5))]))
               for _ in range(30)]
    return metric, samples, 'accuracy/top1'


def _voc_run():
    from mmdet.evaluation import VOCMetric
    metric = VOCMetric(metric='mAP', eval_mode='area')
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    anns, dets = _detection_set(5, images=10)
    samples = []
    for ann, per_class in zip(anns, dets):
        boxes = np.vstack(per_class)
        labels = np.concatenate([np.full(len(d), c)
                                 for c, d in enumerate(per_class)])
        samples.append(dict(
            gt_instances=dict(bboxes=torch.from_numpy(ann['bboxes']),
                              labels=torch.from_numpy(ann['labels'])),
            ignored_instances=dict(
                bboxes=torch.from_numpy(ann['bboxes_ignore']),
                labels=torch.from_numpy(ann['labels_ignore'])),
            pred_instances=dict(bboxes=torch.from_numpy(boxes[:, :4]),
                                scores=torch.from_numpy(boxes[:, 4]),
                                labels=torch.from_numpy(labels))))
    return metric, samples, 'pascal_voc/mAP'


def _iou_run():
    from mmseg.evaluation import IoUMetric
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=('a', 'b', 'c', 'd'))
    rng = np.random.default_rng(6)
    samples = []
    for _ in range(10):
        label = torch.from_numpy(rng.integers(0, 4, (1, 8, 8)))
        pred = torch.where(torch.from_numpy(rng.random((1, 8, 8)) < 0.6),
                           label, torch.zeros_like(label))
        samples.append(dict(pred_sem_seg=dict(data=pred),
                            gt_sem_seg=dict(data=label)))
    return metric, samples, 'mIoU'


@pytest.mark.parametrize('run', [_accuracy_run, _voc_run, _iou_run])
def test_recorder_keeps_what_the_metric_reports(run):
    """The records caught from a real mm metric give back the number it
    reports (mmseg rounds mIoU to 2 decimals), and the recorder forgets
    them once taken."""
    from mmengine.evaluator import Evaluator
    recorder = PerImageRecorder()
    metric, samples, key = run()
    evaluator = Evaluator(metric)
    recorder.attach(evaluator).attach(evaluator)  # twice: wrapped once
    for test in range(2):  # a runner tests the QANN, then each SNN
        evaluator.process(samples[:4], None)
        evaluator.process(samples[4:], None)
        reported = evaluator.evaluate(len(samples))[key]
        got = recorder.take()
        assert list(got) == [key] and recorder.take() == {}
        records, metric_fn = got[key]
        assert len(records) == len(samples)
        assert metric_fn(records, None) == pytest.approx(float(reported),
                                                         abs=0.006)


# -- tools/test.py --compare --------------------------------------------------
@pytest.fixture(scope='module')
def tiny_qann(tiny_voc, tmp_path_factory):
    from mmengine.runner import Runner
    work = tmp_path_factory.mktemp('qann')
    Runner.from_cfg(tiny_cls_config(tiny_voc, work)).train()
    return osp.join(work, 'epoch_1.pth')


def _test_tool(tiny_voc, ckpt, tmp_path, *extra):
    return subprocess.run(
        [sys.executable, 'tools/test.py',
         'configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py', ckpt,
         '--compare', '--neuron', 'signed', 'unsigned', '--work-dir',
         str(tmp_path), *extra, '--cfg-options',
         f'test_dataloader.dataset.data_root={tiny_voc}',
         'model.backbone.base_channels=8', 'model.head.in_channels=64'],
        cwd=REPO, capture_output=True, text=True, timeout=600)


def test_compare_prints_and_writes_the_intervals(tiny_voc, tiny_qann,
                                                 tmp_path):
    table = tmp_path / 'compare.json'
    out = _test_tool(tiny_voc, tiny_qann, tmp_path, '--bootstrap', '200',
                     '--out-json', str(table))
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(table.read_text())
    assert [r['model'] for r in rows] == ['QANN', 'SNN', 'SNN']
    qann = rows[0]['accuracy/top1']
    for row in rows[1:]:
        lo, hi = row['accuracy/top1_ci95']
        assert row['accuracy/top1_diff'] == pytest.approx(
            row['accuracy/top1'] - qann, abs=1e-4)
        assert lo <= hi
    header = next(line for line in out.stdout.splitlines()
                  if line.startswith('| model'))
    cells = [c.strip() for c in header.strip('|').split('|')]
    at = cells.index('accuracy/top1')
    assert cells[at + 1:at + 3] == ['accuracy/top1_diff',
                                    'accuracy/top1_ci95']
    assert '200 resamples of the images, seed 0' in out.stdout


def test_compare_refuses_a_negative_bootstrap(tiny_voc, tmp_path):
    out = _test_tool(tiny_voc, 'missing.pth', tmp_path, '--bootstrap', '-1')
    assert out.returncode == 2 and 'Traceback' not in out.stderr
    assert out.stderr.strip().splitlines() == [
        'error: --bootstrap must be an integer >= 0 (resamples, e.g. 1000; '
        '0 switches the interval off), got -1']
