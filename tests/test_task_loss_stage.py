"""The task-loss stage of LayerwiseFinetuneLoop: the SNN's own task loss
falls under the straight-through surrogate (thresholds frozen or
learnable) for the classifier, the detector and the segmentor, its
gradient reaches the earliest spiking layers only through the surrogate,
the wrappers refuse that loss outside the stage, and killed / two-process
runs with the stage repeat one uninterrupted run."""
import json
import math
import os
import os.path as osp
import subprocess
import sys
from contextlib import nullcontext

import pytest
import torch
from conftest import REPO, START_ABORT
from finetune_helpers import finetune_cfg, train_tiny_qann
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from fastsnn_mm.engine.loops.finetune_progress import (
    REPORT_FILE,
    FinetuneProgress,
)
from fastsnn_mm.engine.loops.joint_tuning import straight_through
from fastsnn_mm.engine.loops.task_loss_stage import (
    LABEL,
    LearnableThresholds,
    task_loss,
)

HERE = osp.dirname(osp.abspath(__file__))
#: groups of one step and one lr, no joint stage, then the task stage
TASK = dict(lr_candidates=[1e-3], iters_per_layer=1, joint_iters=0,
            task_iters=3, task_lr=1e-2, task_thresholds='learnable')


@pytest.fixture(scope='module')
def qann(tiny_voc, tmp_path_factory, one_thread):
    return tiny_voc, train_tiny_qann(tiny_voc, tmp_path_factory.mktemp('q'))


@pytest.fixture(scope='module')
def whole(qann, tmp_path_factory):
    """The uninterrupted one-process run with the task stage."""
    data_root, ckpt = qann
    work = tmp_path_factory.mktemp('task_whole')
    runner = Runner.from_cfg(finetune_cfg(data_root, work, ckpt,
                                          evaluate=True, report_stages=True,
                                          **TASK))
    runner.train()
    return work, runner


def _snn_and_batch(data_root, ckpt):
    """The tuned-from QANN converted at T = 3, and one labelled batch."""
    runner = Runner.from_cfg(finetune_cfg(data_root, '/nowhere', ckpt))
    runner.load_checkpoint(ckpt)
    model = runner.model.eval()
    model.to_snn(timesteps=3, neuron='signed')
    return model, next(iter(runner.val_dataloader))


def test_snn_loss_is_refused_outside_the_stage(qann):
    model, batch = _snn_and_batch(*qann)
    data = model.data_preprocessor(batch, False)
    with pytest.raises(RuntimeError, match='task_iters'):
        model(**data, mode='loss')
    with model.snn_loss_allowed():  # as the stage runs it
        assert float(model(**data, mode='loss')['loss']) > 0


@pytest.mark.parametrize('thresholds', ['frozen', 'learnable'])
def test_task_loss_falls_on_a_tiny_model(qann, thresholds):
    model, batch = _snn_and_batch(*qann)
    learnable = LearnableThresholds(model) \
        if thresholds == 'learnable' else None
    thetas = [n.theta.clone() for n in model.neurons]
    params = list(model.parameters()) + (
        learnable.params if learnable else [])
    optim = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(12):
        with straight_through(model, 3), (
                learnable.gradient() if learnable else nullcontext()):
            loss = task_loss(model, batch, False)
        losses.append(float(loss))
        optim.zero_grad()
        loss.backward()
        optim.step()
        if learnable:
            learnable.write_back()
    # measured 1.365 -> 1.166, falling at all but one step
    assert losses[-1] < 0.9 * losses[0], losses
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 8, losses
    moved = [not torch.equal(n.theta, t) for n, t in zip(model.neurons,
                                                         thetas)]
    assert all(moved) if learnable else not any(moved)


def _tiny_dense_snn(task, data_root):
    """The 2-bit synthetic demo detector ('det') or segmentor ('seg') that
    the *_2bit_layerwise.py configs tune, shrunk to width 4 and untrained,
    as a signed SNN at T = 3; and one batch of four training images (96 px,
    not resized or flipped)."""
    if task == 'det':
        cfg = Config.fromfile(
            osp.join(REPO, 'configs', 'yolo_fastsnn_synthetic_2bit.py'))
        init_default_scope('mmdet')
        from mmdet.registry import DATASETS, MODELS
        m = cfg.model
        m.backbone.base_channels = 4  # stages of 16, 32, 64 channels
        m.neck.in_channels, m.neck.out_channels = [64, 32, 16], [32, 16, 8]
        m.bbox_head.in_channels = [32, 16, 8]
        m.bbox_head.out_channels = [64, 32, 16]
    else:
        cfg = Config.fromfile(
            osp.join(REPO, 'configs', 'deeplab_fastsnn_synthetic_2bit.py'))
        init_default_scope('mmseg')
        from mmseg.registry import DATASETS, MODELS
        m = cfg.model
        m.backbone.base_channels = 4
        m.decode_head.in_channels, m.decode_head.channels = 32, 8
    assert m.quant.bits == 2
    data = cfg.train_dataloader.dataset
    data.data_root = data_root
    data.pipeline = [p for p in data.pipeline if p.type in (
        'LoadImageFromFile', 'LoadAnnotations', 'PackDetInputs',
        'PackSegInputs')]
    torch.manual_seed(0)
    model = MODELS.build(m).eval()
    model.to_snn(timesteps=3, neuron='signed')
    dataset = DATASETS.build(data)
    return model, pseudo_collate([dataset[i] for i in range(4)])


def _earliest_spiking_weights(model):
    """The weights of the stem's first conv, which feeds the first
    neurons."""
    name, weight = next((n, p) for n, p in model.named_parameters()
                        if p.ndim == 4)
    assert name.startswith('backbone.stem.'), name
    return weight


@pytest.mark.usefixtures('one_thread')
@pytest.mark.parametrize('thresholds', ['frozen', 'learnable'])
@pytest.mark.parametrize('task', ['det', 'seg'])
def test_task_loss_falls_on_a_tiny_dense_model(tiny_voc, task, thresholds):
    model, batch = _tiny_dense_snn(task, tiny_voc)
    data = model.data_preprocessor(batch, False)
    with pytest.raises(RuntimeError, match='task_iters'):
        model(**data, mode='loss')
    first = _earliest_spiking_weights(model)
    # spikes carry no gradient: without the surrogate none reaches it
    task_loss(model, batch, False).backward()
    assert first.grad is None
    model.zero_grad(set_to_none=True)

    learnable = LearnableThresholds(model) \
        if thresholds == 'learnable' else None
    thetas = [n.theta.clone() for n in model.neurons]
    params = list(model.parameters()) + (
        learnable.params if learnable else [])
    optim = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for step in range(12):
        with straight_through(model, 3), (
                learnable.gradient() if learnable else nullcontext()):
            loss = task_loss(model, batch, False)
        losses.append(loss.item())
        optim.zero_grad()
        loss.backward()
        if step == 0:  # through the surrogate, every neuron crossed
            assert first.grad is not None and torch.isfinite(
                first.grad).all() and first.grad.abs().sum() > 0
        optim.step()
        if learnable:
            learnable.write_back()
    assert all(map(math.isfinite, losses)), losses
    # measured: det 1726 -> 442 (frozen) / 427 (learnable), seg 1.631 ->
    # 1.071 / 1.086, falling at every step
    assert losses[-1] < 0.9 * losses[0], losses
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 8, losses
    moved = [not torch.equal(n.theta, t) for n, t in zip(model.neurons,
                                                         thetas)]
    assert all(moved) if learnable else not any(moved)


def test_stage_row_and_report(whole):
    work, runner = whole
    with open(osp.join(work, REPORT_FILE)) as f:
        rep = json.load(f)
    row = rep['groups'][-1]
    assert row['layer'] == LABEL and row['thresholds'] == 'learnable'
    assert row['tried'][0]['lr'] == 1e-2
    # kept only if it helped on the judging slice
    assert row['reverted'] or row['metric_after'] > row['metric_before'] or (
        row['metric_after'] == row['metric_before']
        and row['loss_after'] < row['loss_before'])
    assert rep['metric_after'] >= rep['metric_before']
    assert rep['task_iters'] == 3 and rep['judged_on']['source'] == \
        'train_slice'
    reported = rep['reported_on']
    assert reported['split'] == 'val' and reported['untouched']
    assert set(reported['before']) == set(reported['after']) == {
        'accuracy/top1'}
    # the reporting split after each stage; the last one is the final state
    stages = rep['reported_stages']
    assert list(stages) == ['groups', 'task']
    assert stages['task'] == reported['after']
    assert sorted(rep['stage_seconds']) == ['groups', 'task']
    assert all(s > 0 for s in rep['stage_seconds'].values())


class _Killed(Exception):
    pass


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _equal_weights(got, want, atol):
    assert got.keys() == want.keys()
    for k in want:  # tolerance: exact up to float summation order
        assert torch.allclose(got[k], want[k], atol=atol, rtol=0), k


def test_resume_before_the_task_stage_repeats_one_run(qann, whole, tmp_path,
                                                      monkeypatch):
    data_root, ckpt = qann
    whole = whole[1]
    n_groups = len(whole.train_loop.report) - 1
    save, saves = FinetuneProgress.save, []

    def save_then_die(progress, runner, *args):
        save(progress, runner, *args)
        saves.append(1)
        if len(saves) == n_groups:  # every group done, the stage not
            raise _Killed
    monkeypatch.setattr(FinetuneProgress, 'save', save_then_die)
    work = tmp_path / 'killed'
    with pytest.raises(_Killed):
        Runner.from_cfg(finetune_cfg(data_root, work, ckpt, **TASK)).train()
    monkeypatch.setattr(FinetuneProgress, 'save', save)

    cfg = finetune_cfg(data_root, work, ckpt, **TASK)
    cfg.resume, cfg.load_from = True, None  # tools/train.py --resume
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.train_loop.iter == whole.train_loop.iter
    assert [r['reverted'] for r in resumed.train_loop.report] == \
        [r['reverted'] for r in whole.train_loop.report]
    _equal_weights(_weights(resumed.model), _weights(whole.model), 1e-6)


def test_two_processes_equal_one_with_the_task_stage(qann, whole, tmp_path):
    data_root, ckpt = qann
    one = whole[1]
    out = tmp_path / 'two.pth'
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    for attempt in range(2):  # a gloo rank abort, see test_distributed
        proc = subprocess.run(
            [sys.executable, '-m', 'torch.distributed.run',
             '--nproc_per_node=2', '--standalone',
             osp.join(HERE, 'finetune_helpers.py'), data_root, ckpt,
             str(tmp_path / f'two{attempt}'), str(out),
             json.dumps(dict(TASK, evaluate=True))],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode == 0 or START_ABORT not in proc.stderr:
            break
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = torch.load(out, weights_only=False)
    assert [r['reverted'] for r in two['report']] == \
        [r['reverted'] for r in one.train_loop.report]
    # tolerance: float summation order
    for k, v in two['state'].items():
        assert torch.allclose(v, one.model.state_dict()[k], atol=1e-5,
                              rtol=1e-4), k
