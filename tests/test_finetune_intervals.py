"""LayerwiseFinetuneLoop's paired intervals on the reporting split: per-image
records kept for the QANN and the untuned SNN (through the safe checkpoint
loader, for --resume), each later report's tuned - untuned and SNN - QANN
differences with 95 % paired bootstrap intervals in the JSON and the log,
and the recorder taken off the evaluator after each report."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from finetune_helpers import finetune_cfg, train_tiny_qann
from mmengine.runner import Runner

from fastsnn_mm.analysis.bootstrap import (
    ClassCurve,
    DetectionRecords,
    SegmentationRecords,
    miou,
    top1,
    voc_map,
)
from fastsnn_mm.analysis.per_image import MetricRecords, PerImageRecorder
from fastsnn_mm.engine.loops.finetune_progress import (
    PROGRESS_FILE,
    REPORT_FILE,
    FinetuneProgress,
)
from fastsnn_mm.engine.loops.finetune_report import (
    TUNED,
    VS_QANN,
    _recording,
    interval_table,
    keep_report,
    plain_records,
    restore_records,
)
from fastsnn_mm.utils.safe_checkpoint import load_checkpoint_file


def _synthetic_records(seed=0, images=12):
    """One of each kind of records, on ``images`` images."""
    rng = np.random.default_rng(seed)
    hist = [rng.integers(1, 50, (images, 3)).astype(np.float64)
            for _ in range(4)]
    curves = []
    for c in range(2):
        n = 2 * images
        curves.append(ClassCurve(rng.integers(0, images, n),
                                 (rng.random(n) < 0.6).astype(np.float32),
                                 np.zeros(n, dtype=np.float32)))
        curves[-1].fp[:] = 1 - curves[-1].tp
    det = DetectionRecords(rng.integers(0, 3, (images, 2)),
                           (tuple(curves), ), (0.5, ), 'area')
    return {'accuracy/top1': MetricRecords(rng.random(images) < 0.7, top1),
            'mIoU': MetricRecords(SegmentationRecords(*hist), miou),
            'pascal_voc/mAP': MetricRecords(det, voc_map)}


def test_records_survive_the_safe_checkpoint_loader(tmp_path):
    """What --resume reads back gives the same metrics on every resample."""
    records = _synthetic_records()
    path = str(tmp_path / 'p.pth')
    torch.save(dict(meta=dict(r=plain_records(records))), path)
    back = restore_records(load_checkpoint_file(path)['meta']['r'])
    assert back.keys() == records.keys()
    counts = np.random.default_rng(1).integers(0, 3, 12)
    for key, got in records.items():
        assert back[key].metric_fn is got.metric_fn
        for c in (None, counts):
            assert back[key].metric_fn(back[key].records, c) == \
                got.metric_fn(got.records, c)


def test_a_model_against_itself_is_zero_and_a_worse_one_is_below():
    records = _synthetic_records()
    progress = FinetuneProgress()
    for label in ('qann', 'before', 'groups'):
        keep_report(progress, label, records, 0.01)
    got = progress.reported_intervals
    assert 'qann' not in got and set(got) == {'before', 'groups'}
    assert set(got['before']['mIoU']) == {'images', VS_QANN}  # no TUNED
    for key in records:
        row = got['groups'][key]
        assert row['images'] == 12
        assert row[TUNED] == row[VS_QANN] == dict(diff=0.0, ci95=[0.0, 0.0])
    worse = dict(records, **{'accuracy/top1': MetricRecords(
        np.zeros(12, dtype=bool), top1)})
    keep_report(progress, 'after', worse, 0.0)
    row = progress.reported_intervals['after']['accuracy/top1']
    lo, hi = row[TUNED]['ci95']
    assert lo <= row[TUNED]['diff'] <= hi < 0
    spent = progress.report_records['seconds']
    assert spent['records'] == pytest.approx(0.03) and spent['bootstrap'] > 0
    progress.reported_before = {'accuracy/top1': 70.0}
    table = interval_table(progress, after={'accuracy/top1': 0.0})
    assert '1000 resamples of the same 12 images, seed 0' in table
    assert 'after   accuracy/top1:   0.0000 | tuned - untuned ' in table
    assert 'tuned - untuned +0.0000 [+0.0000, +0.0000]' in table


def test_records_of_other_images_give_no_interval():
    progress = FinetuneProgress()
    keep_report(progress, 'before', _synthetic_records(images=12), 0.0)
    keep_report(progress, 'after', _synthetic_records(images=10), 0.0)
    assert 'after' not in progress.reported_intervals


def test_recorder_is_taken_off_after_the_report():
    """Judging through the reporting split's evaluator keeps no records."""
    from mmengine.evaluator import Evaluator
    from mmpretrain.evaluation import Accuracy
    metric = Accuracy()
    evaluator = Evaluator([metric])
    recorder = PerImageRecorder()
    with _recording(evaluator, recorder):
        assert 'compute_metrics' in vars(metric)
    assert 'compute_metrics' not in vars(metric)
    assert not any('per_image' in k for k in vars(metric))


# -- a tiny run ------------------------------------------------------------
@pytest.fixture(scope='module')
def run(tiny_voc, tmp_path_factory, one_thread):
    """A tiny run reporting the val split before and after each stage."""
    ckpt = train_tiny_qann(tiny_voc, tmp_path_factory.mktemp('q'))
    work = tmp_path_factory.mktemp('intervals')
    cfg = finetune_cfg(tiny_voc, work, ckpt, evaluate=True,
                       report_stages=True, lr_candidates=[1e-3],
                       iters_per_layer=1, joint_iters=1)
    runner = Runner.from_cfg(cfg)
    runner.train()
    with open(osp.join(work, REPORT_FILE)) as f:
        return work, runner, json.load(f)


def test_report_carries_the_intervals(run):
    work, runner, rep = run
    key = 'accuracy/top1'
    images = len(runner.val_dataloader.dataset)
    assert set(rep['reported_on']['qann']) == {key}
    ints = rep['reported_intervals']
    assert list(ints) == ['before', 'groups', 'joint', 'after']
    assert set(ints['before'][key]) == {'images', VS_QANN}
    for label in ('groups', 'joint', 'after'):
        row = ints[label][key]
        assert row['images'] == images
        for name in (TUNED, VS_QANN):
            lo, hi = row[name]['ci95']
            assert lo <= row[name]['diff'] <= hi
    # the differences are those of the reported metrics
    reported = dict(rep['reported_stages'], before=rep['reported_on'][
        'before'], after=rep['reported_on']['after'])
    qann = rep['reported_on']['qann'][key]
    for label, per_key in ints.items():
        assert per_key[key][VS_QANN]['diff'] == pytest.approx(
            reported[label][key] - qann, abs=1e-5)  # metric in float32
        if label != 'before':
            assert per_key[key][TUNED]['diff'] == pytest.approx(
                reported[label][key] - reported['before'][key], abs=1e-5)
    method = rep['interval_method']
    assert (method['level'], method['resamples'], method['seed']) == \
        (0.95, 1000, 0)
    assert method['bootstrap_seconds'] > 0 and \
        method['qann_test_seconds'] > 0
    # the references come back from the progress checkpoint (--resume),
    # and the untuned SNN against itself is [0, 0]
    saved = FinetuneProgress.load(osp.join(work, PROGRESS_FILE)).progress
    ints.pop('after')  # made after the last progress save
    assert saved.reported_intervals == ints
    store = saved.report_records
    before = restore_records(store['before'])
    assert len(before[key].records) == images
    again = FinetuneProgress(report_records=store)
    keep_report(again, 'same', before, 0.0)
    assert again.reported_intervals['same'][key][TUNED] == dict(
        diff=0.0, ci95=[0.0, 0.0])
    # the recorder is off the val evaluator again
    for metric in runner.val_loop.evaluator.metrics:
        assert 'compute_metrics' not in vars(metric)
