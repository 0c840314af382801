"""LayerwiseFinetuneLoop: what it reports, that the task metric never ends
worse, kill-and-resume at the group reached, and two processes (DDP, gloo)
giving what one gives."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from finetune_helpers import finetune_cfg, train_tiny_qann
from mmengine.runner import Runner

from fastsnn_mm.engine.loops.finetune_judges import AgreementJudge, MetricJudge
from fastsnn_mm.engine.loops.finetune_progress import (
    PROGRESS_FILE,
    REPORT_FILE,
    FinetuneProgress,
)
from fastsnn_mm.engine.loops.finetune_settings import FinetuneSettings

HERE = osp.dirname(osp.abspath(__file__))


@pytest.fixture(scope='module')
def qann(tiny_voc, tmp_path_factory, one_thread):
    """A 2-bit tiny QResNet trained well enough that harm shows in top-1."""
    return tiny_voc, train_tiny_qann(tiny_voc, tmp_path_factory.mktemp('q'))


@pytest.fixture(scope='module')
def whole(qann, tmp_path_factory):
    """One uninterrupted single-process run, the reference of the tests."""
    data_root, ckpt = qann
    work = tmp_path_factory.mktemp('whole')
    return work, _run(finetune_cfg(data_root, work, ckpt))


def _run(cfg):
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_report_has_per_layer_mismatch_before_and_after(whole):
    tmp_path, runner = whole
    with open(osp.join(tmp_path, REPORT_FILE)) as f:
        rep = json.load(f)
    names = [r['layer'] for r in rep['layers']]
    assert len(names) > 5 and all(
        r['mismatch_before'] is not None for r in rep['layers'])
    # held-out mismatch is the keep-best judge: no kept group raised it
    *groups, joint = rep['groups']
    for row in groups:
        if row['mismatch_before'] is not None:
            assert row['mismatch_after'] <= row['mismatch_before']
        assert [t['lr'] for t in row['tried']] == [1e-3, 1e-2]
    # the joint stage comes last, judged by the metric like a group
    assert joint['layer'] == 'all layers (joint)' and joint['lr'] == 1e-3
    assert joint['reverted'] or joint['metric_after'] >= joint['metric_before']
    assert all(r['inherited_before'] <= r['mismatch_before']
               for r in rep['layers'])
    assert rep['metric_key'] == 'accuracy/top1' and rep['metric_qann'] > 0
    assert rep['metric_after'] >= rep['metric_before']
    assert rep['groups'] == runner.train_loop.report
    assert osp.isfile(osp.join(tmp_path, 'snn_finetuned_signed_T3.pth'))
    assert not [f for f in os.listdir(tmp_path) if f.startswith('.tmp_')]


def test_judging_slice_and_reporting_split_share_no_image(whole):
    """Groups are judged on training images held out of tuning, never on
    the val split the run reports."""
    tmp_path, runner = whole
    with open(osp.join(tmp_path, REPORT_FILE)) as f:
        judged = json.load(f)['judged_on']
    assert judged['source'] == 'train_slice'
    judging = judged['indices']
    tuning = runner.train_loop.dataloader.dataset.indices
    total = len(runner.train_loop.dataloader.dataset.dataset)
    assert len(judging) == judged['images'] > 0
    assert not set(judging) & set(tuning)
    assert sorted(judging + tuning) == list(range(total))
    val = runner.val_dataloader.dataset
    reported = {osp.basename(val.get_data_info(i)['img_path'])
                for i in range(len(val))}
    assert not set(judged['files']) & reported
    # crops are <image id>_<k>.png: no source image on both sides either
    assert not {f.split('_')[0] for f in judged['files']} & {
        f.split('_')[0] for f in reported}


def _val_metric(runner):
    judge = MetricJudge(runner.val_loop.evaluator,
                        list(runner.val_dataloader))
    return judge(runner.model)


def test_harmful_lr_is_reverted_by_the_task_metric(qann, tmp_path):
    data_root, ckpt = qann
    # judged on the val set (the old way, one flag away), so that the val
    # metric below is the one the guard watched
    harm = dict(lr_candidates=[30.0], iters_per_layer=3, keep_best=False,
                judge_on='val')
    # judged by the task metric on the output group and at the end ...
    guard = _run(finetune_cfg(data_root, tmp_path / 'guard', ckpt,
                              metric_check='output', **harm))
    with open(osp.join(tmp_path / 'guard', REPORT_FILE)) as f:
        rep = json.load(f)
    before = rep['metric_before']
    assert rep['judged_on']['split'] == 'val'
    assert rep['metric_after'] >= before
    assert _val_metric(guard) >= before
    # ... the SNN keeps its top-1, which this lr unguarded wrecks
    free = _run(finetune_cfg(data_root, tmp_path / 'free', ckpt,
                             metric_check='none', **harm))
    assert _val_metric(free) < before


class _Killed(Exception):
    pass


def test_resume_continues_at_the_group_reached(qann, whole, tmp_path,
                                              monkeypatch):
    data_root, ckpt = qann
    whole = whole[1]
    expected = _weights(whole.model)
    n_groups = len(whole.train_loop.report)

    save = FinetuneProgress.save
    saves = []

    def save_then_die(progress, runner, *args):
        save(progress, runner, *args)
        saves.append(1)
        if len(saves) == 3:
            raise _Killed
    monkeypatch.setattr(FinetuneProgress, 'save', save_then_die)
    work = tmp_path / 'killed'
    with pytest.raises(_Killed):
        _run(finetune_cfg(data_root, work, ckpt))
    monkeypatch.setattr(FinetuneProgress, 'save', save)
    assert osp.isfile(work / PROGRESS_FILE)

    cfg = finetune_cfg(data_root, work, ckpt)
    cfg.resume, cfg.load_from = True, None  # tools/train.py --resume
    resumed = _run(cfg)
    rows = resumed.train_loop.report
    assert len(rows) == n_groups and len(saves) == 3
    # only the groups after the third were tuned by the resumed run
    assert resumed.train_loop.iter == whole.train_loop.iter
    got = _weights(resumed.model)
    assert got.keys() == expected.keys()
    for k in expected:  # tolerance: exact up to float summation order
        assert torch.allclose(got[k], expected[k], atol=1e-6, rtol=0), k


def test_resume_without_progress_is_one_clear_error(qann, tmp_path):
    data_root, ckpt = qann
    cfg = finetune_cfg(data_root, tmp_path, ckpt)
    cfg.resume, cfg.load_from = True, None
    with pytest.raises(FileNotFoundError, match='nothing to resume'):
        _run(cfg)


def test_ddp_two_processes_equal_one(qann, whole, tmp_path):
    data_root, ckpt = qann
    one = whole[1]
    out = tmp_path / 'two.pth'
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         '--standalone', osp.join(HERE, 'finetune_helpers.py'),
         data_root, ckpt, str(tmp_path / 'two'), str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = torch.load(out, weights_only=False)
    assert [r['reverted'] for r in two['report']] == \
        [r['reverted'] for r in one.train_loop.report]
    ref = one.model.state_dict()
    for k, v in two['state'].items():  # tolerance: float summation order
        assert torch.allclose(v, ref[k], atol=1e-5, rtol=1e-4), k


def test_joint_stage_gradient_reaches_the_first_layer(qann):
    """Through every neuron the spikes carry their input's gradient, so the
    output loss of the joint stage moves the weights before the first
    neuron; the output group's loss (spikes without a gradient) does not."""
    import copy

    from mmpretrain.registry import MODELS

    from fastsnn_mm.engine.loops.joint_tuning import output_loss
    from fastsnn_mm.engine.loops.layer_targets import layer_loss
    data_root, ckpt = qann
    model = MODELS.build(finetune_cfg(data_root, '/nowhere', ckpt).model)
    reference = copy.deepcopy(model).eval()
    model.eval().to_snn(mode='folded', timesteps=3, neuron='signed')
    first = model.backbone.stem[0][0].weight
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    layer_loss(model, reference, None, x)[0].backward()
    assert first.grad is None or not first.grad.any()
    loss = output_loss(model, reference, x)
    loss.backward()
    assert float(loss) > 0 and first.grad.abs().sum() > 0


GOOD_ARGS = dict(iters_per_layer=40, surrogate='identity',
                 metric_check='every', lr_candidates=[1e-4, 1e-3],
                 joint_iters=60, joint_lr=1e-4)


@pytest.mark.parametrize('key, value', [
    ('iters_per_layer', 0), ('iters_per_layer', '40'), ('surrogate', 'tanh'),
    ('metric_check', 'sometimes'), ('lr_candidates', []),
    ('lr_candidates', [1e-3, -1]), ('joint_iters', -1), ('joint_iters', 2.5),
    ('joint_lr', 0), ('joint_lr', '1e-4'), ('judge_on', 'holdout'),
    ('judge_size', 0), ('judge_size', 1.0), ('judge_seed', -1),
    ('report_on', 'train'), ('task_iters', -1), ('task_lr', 0),
    ('task_thresholds', 'trainable')])
def test_bad_loop_arguments_name_the_config_key(key, value):
    """A FastSNNError, so tools/train.py ends in one 'error: ...' line."""
    from fastsnn_mm.errors import BadArgumentError
    FinetuneSettings(**GOOD_ARGS)  # the demo configs' values pass
    with pytest.raises(BadArgumentError, match=f'train_cfg.{key} must be'):
        FinetuneSettings(**dict(GOOD_ARGS, **{key: value}))


def test_unknown_loop_key_is_one_clear_error():
    from fastsnn_mm.errors import BadArgumentError
    with pytest.raises(BadArgumentError, match='unknown key.*judge_sise'):
        FinetuneSettings.from_config(dict(judge_sise=0.1))


def test_label_free_judge_keeps_the_snn_close_to_its_qann(qann, tmp_path):
    """judge_on='val_agreement': the val images judge by how closely the
    SNN's outputs follow the QANN's (no labels read); a harmful learning
    rate is reverted by it, so agreement never ends lower than it began."""
    data_root, ckpt = qann
    runner = _run(finetune_cfg(
        data_root, tmp_path, ckpt, lr_candidates=[30.0], iters_per_layer=3,
        keep_best=False, judge_on='val_agreement'))
    with open(osp.join(tmp_path, REPORT_FILE)) as f:
        rep = json.load(f)
    judged = rep['judged_on']
    assert judged['source'] == 'val_agreement' and judged['labels'] is False
    assert judged['images'] == len(runner.val_dataloader.dataset)
    assert rep['metric_key'] == AgreementJudge.metric_key
    # the QANN agrees with itself; the SNN at best as well
    assert rep['metric_qann'] == 0.0 and rep['metric_before'] < 0.0
    assert rep['metric_before'] <= rep['metric_after'] <= 0.0
    assert any(g['reverted_by'] == 'task metric' for g in rep['groups'])


def test_agreement_judge_scores_distance_to_the_qann(qann, tmp_path):
    """The QANN scores 0 against itself; an SNN scores minus its output
    MSE, lower the further its weights move."""
    from fastsnn_mm.engine.loops.finetune_trainer import preprocess
    data_root, ckpt = qann
    runner = Runner.from_cfg(finetune_cfg(data_root, str(tmp_path), ckpt))
    runner.load_checkpoint(ckpt)
    model = runner.model.eval()
    qann_copy = model.qann_copy()
    batches = [preprocess(model, d) for d in list(runner.val_dataloader)[:2]]
    judge = AgreementJudge(qann_copy, batches)
    model.to_snn(mode='folded', timesteps=3, neuron='signed')
    assert judge(qann_copy) == 0.0
    near = judge(model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    assert judge(model) < near <= 0.0
