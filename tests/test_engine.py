"""Conversion hook, tools/test.py --snn and the layer-wise fine-tuning loop
on the tiny classification pipeline."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, tiny_cls_config
from mmengine.runner import Runner

from fastsnn_mm import IFNeuron
from fastsnn_mm.engine import FastSNNConversionHook


@pytest.fixture(scope='module')
def qann_ckpt(tiny_voc, tmp_path_factory):
    work = tmp_path_factory.mktemp('qann')
    cfg = tiny_cls_config(tiny_voc, work)
    cfg.train_cfg.max_epochs = 2
    Runner.from_cfg(cfg).train()
    return tiny_voc, osp.join(work, 'epoch_2.pth')


def _has_neurons(model):
    return any(isinstance(m, IFNeuron) for m in model.modules())


def test_hook_converts_after_train(tiny_voc, tmp_path):
    cfg = tiny_cls_config(tiny_voc, tmp_path, custom_hooks=[
        dict(type='FastSNNConversionHook', convert_at='after_train',
             neuron='unsigned')])
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert _has_neurons(runner.model)
    assert runner.model.snn_cfg == dict(timesteps=7, neuron='unsigned',
                                        mode='folded', time_chunk=None,
                                        spike_dtype=None)
    assert osp.isfile(osp.join(tmp_path, 'snn_unsigned_T7.pth'))


def test_hook_converts_before_test_only(qann_ckpt, tmp_path):
    data_root, ckpt = qann_ckpt
    cfg = tiny_cls_config(data_root, tmp_path, load_from=ckpt, custom_hooks=[
        dict(type='FastSNNConversionHook', convert_at='before_test',
             timesteps=3)])
    runner = Runner.from_cfg(cfg)
    runner.val()
    assert not _has_neurons(runner.model)  # validation ran on the QANN
    metrics = runner.test()
    assert _has_neurons(runner.model)
    assert runner.model.snn_cfg['timesteps'] == 3
    assert 'accuracy/top1' in metrics
    assert osp.isfile(osp.join(tmp_path, 'snn_signed_T3.pth'))


def test_hook_rejects_unknown_point():
    with pytest.raises(ValueError, match='convert_at'):
        FastSNNConversionHook(convert_at='before_lunch')


def test_tools_test_reports_snn_top1(qann_ckpt, tmp_path):
    data_root, ckpt = qann_ckpt
    out = subprocess.run(
        [sys.executable, 'tools/test.py',
         'configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py', ckpt, '--snn',
         '--neuron', 'signed', '--work-dir', str(tmp_path), '--cfg-options',
         f'test_dataloader.dataset.data_root={data_root}',
         'model.backbone.base_channels=8', 'model.head.in_channels=64'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    table = [line for line in out.stdout.splitlines()
             if line.startswith('| SNN')]
    assert table and '| signed | 7 |' in table[0]
    top1 = float(table[0].split('|')[-2])
    assert 0 <= top1 <= 100


def test_tools_test_bad_input_is_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, 'tools/test.py',
         'configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py',
         str(tmp_path / 'missing.pth'), '--snn'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert 'Traceback' not in out.stderr and 'missing.pth' in out.stderr


def test_layerwise_loop_tunes_one_layer_at_a_time(qann_ckpt, tmp_path):
    data_root, ckpt = qann_ckpt
    cfg = tiny_cls_config(data_root, tmp_path, load_from=ckpt)
    cfg.train_cfg = dict(type='LayerwiseFinetuneLoop', iters_per_layer=2,
                         timesteps=3, evaluate=False, heldout_batches=1)
    cfg.optim_wrapper = dict(optimizer=dict(
        type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4))
    cfg.model.quant = dict(bits=2, alpha=2.0)  # 2-bit, T=3: a gap to close
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    loop = runner.train_loop
    thetas = {n: m.theta.clone() for n, m in model.named_modules()
              if isinstance(m, IFNeuron)}
    # thresholds equal the loaded QANN's alphas: they were never tuned
    ck = torch.load(ckpt, weights_only=False)['state_dict']
    for name, theta in thetas.items():
        assert torch.allclose(theta, ck[name + '.alpha'].abs())
    from fastsnn_mm.engine.loops import assign_layer_groups
    x = torch.randn(1, 3, 32, 32)
    groups = dict((n, {id(p) for p in ps})
                  for n, ps in assign_layer_groups(model, x))
    names = {id(p): n for n, p in model.named_parameters()}
    assert len(loop.report) == len([g for g in groups.values() if g])
    for row in loop.report:
        key = None if row['layer'] == 'output layers' else row['layer']
        allowed = {names[i] for i in groups[key]}
        assert set(row['changed']) <= allowed
        if row['mismatch_before'] is not None and not row['reverted']:
            assert row['mismatch_after'] <= row['mismatch_before']
    assert any(row['changed'] for row in loop.report)
    assert osp.isfile(osp.join(tmp_path, 'snn_finetuned_signed_T3.pth'))


def _shrunk(config, data_root, work_dir):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.work_dir = str(work_dir)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = data_root
        loader.batch_size = 2
        loader.num_workers = 0
        loader.persistent_workers = False
    cfg.train_cfg = dict(type='LayerwiseFinetuneLoop', iters_per_layer=1,
                         evaluate=False, heldout_batches=1)
    cfg.optim_wrapper = dict(optimizer=dict(type='SGD', lr=1e-3,
                                            momentum=0.9))
    cfg.param_scheduler = []
    cfg.log_level = 'WARNING'
    cfg.load_from = None
    return cfg


@pytest.mark.parametrize('config', ['configs/yolo_fastsnn_synthetic.py',
                                    'configs/deeplab_fastsnn_synthetic.py'])
def test_layerwise_loop_runs_for_detection_and_segmentation(
        config, tiny_voc, tmp_path):
    runner = Runner.from_cfg(_shrunk(config, tiny_voc, tmp_path))
    runner.train()
    report = runner.train_loop.report
    assert len(report) > 5 and report[-1]['layer'] == 'output layers'
    assert _has_neurons(runner.model)
    T = runner.model.snn_cfg['timesteps']
    assert osp.isfile(osp.join(tmp_path, f'snn_finetuned_signed_T{T}.pth'))


def test_one_snn_checkpoint_layout_and_old_ones_still_read(tiny_voc,
                                                           tmp_path):
    """The conversion hook and the loop write through save_snn_checkpoint
    (meta: snn, epoch, iter, plus the loop's layerwise report); the files
    both wrote before it, with their own meta layouts, still read."""
    import importlib.util

    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from fastsnn_mm.engine.snn_checkpoint import save_snn_checkpoint
    spec = importlib.util.spec_from_file_location(
        'snn_report', osp.join(REPO, 'tools/analysis_tools/snn_report.py'))
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(tiny_cls_config(tiny_voc, tmp_path).model)
    model.eval()
    model.to_snn(timesteps=3, neuron='signed')
    path = save_snn_checkpoint(model, str(tmp_path), epoch=0, iteration=5,
                               prefix='snn_finetuned', layerwise=[])
    assert osp.basename(path) == 'snn_finetuned_signed_T3.pth'
    meta = torch.load(path, weights_only=False)['meta']
    assert meta == dict(snn=model.snn_cfg, epoch=0, iter=5, layerwise=[])
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    # files from before the spike dtype was saved: four settings, a dict
    old_cfg = {k: v for k, v in model.snn_cfg.items() if k != 'spike_dtype'}
    old_hook = tmp_path / 'old_hook.pth'  # conversion hook, before
    torch.save(dict(meta=dict(snn=old_cfg, epoch=1, iter=3),
                    state_dict=state), old_hook)
    old_loop = tmp_path / 'old_loop.pth'  # fine-tuning loop, before
    torch.save(dict(meta=dict(snn=old_cfg, layerwise=[]),
                    state_dict=state), old_loop)
    for p in (path, old_hook, old_loop):
        _, snn_cfg, weights = report.read_finetuned(str(p))
        assert snn_cfg == model.snn_cfg and weights.keys() == state.keys()
