"""Drop-in use: the training and test scripts shipped inside mmpretrain,
mmdet and mmseg (``<package>/.mim/tools/``) run our synthetic configs
unchanged, as a QANN (the training run's validation) and as an SNN (the
test script with ``model.snn`` set by ``--cfg-options``), and the metric
comes out. The SNN's log says it ran as an SNN, in one line.

Everything is shrunk to about one training iteration on the tiny data.
"""
import importlib
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import REPO

# (package, config, options shrinking it, metric printed, checkpoint)
TASKS = {
    'classification': (
        'mmpretrain', 'configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py',
        ['model.backbone.base_channels=8', 'model.head.in_channels=64',
         'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
         'train_dataloader.batch_size=64', 'param_scheduler=[]'],
        'accuracy/top1', 'epoch_1.pth'),
    'detection': (
        'mmdet', 'configs/yolo_fastsnn_synthetic.py',
        ['train_cfg.max_epochs=1', 'model.backbone.base_channels=8',
         'model.neck.in_channels=[128,64,32]',
         'model.neck.out_channels=[64,32,16]',
         'model.bbox_head.in_channels=[64,32,16]',
         'model.bbox_head.out_channels=[64,32,16]',
         'train_dataloader.batch_size=16'],
        'pascal_voc/mAP', 'epoch_1.pth'),
    'segmentation': (
        'mmseg', 'configs/deeplab_fastsnn_synthetic.py',
        ['train_cfg.max_iters=1', 'train_cfg.val_interval=1',
         'default_hooks.checkpoint.interval=1',
         'train_dataloader.batch_size=2'],
        'mIoU', 'iter_1.pth'),
}


def _mim_tool(package, name):
    mod = importlib.import_module(package)
    path = osp.join(osp.dirname(mod.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        pytest.fail(f'{package} ships no {path}')
    return path


def _data_options(root):
    return [f'{s}_dataloader.dataset.data_root={root}'
            for s in ('train', 'val', 'test')]


def _run(args, work_dir):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO, os.environ.get('PYTHONPATH', '')]))
    out = subprocess.run([sys.executable, *args], cwd=str(work_dir), env=env,
                         text=True, capture_output=True, timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    return log


def _metric(log, key):
    found = re.findall(rf'{re.escape(key)}: (-?[\d.]+|nan)', log)
    assert found, f'no {key} in the log:\n{log[-3000:]}'
    return float(found[-1])


@pytest.mark.parametrize('task', sorted(TASKS))
def test_stock_mm_scripts_train_and_test_our_config(task, tiny_voc,
                                                    tmp_path):
    package, config, shrink, key, ckpt = TASKS[task]
    options = ['--cfg-options', *_data_options(tiny_voc), *shrink]
    work = tmp_path / 'work'
    config = osp.join(REPO, config)
    log = _run([_mim_tool(package, 'train.py'), config, '--work-dir',
                str(work), *options], tmp_path)
    qann = _metric(log, key)  # the training run's validation: the QANN
    assert 'running as an SNN' not in log
    log = _run([_mim_tool(package, 'test.py'), config, str(work / ckpt),
                '--work-dir', str(work), *options, 'model.snn.timesteps=3',
                'model.snn.neuron=signed'], tmp_path)
    snn = _metric(log, key)
    lines = [l for l in log.splitlines() if 'running as an SNN' in l]
    assert len(lines) == 1, lines
    assert re.search(r'T=3, neuron=signed, mode=folded, \d+ neuron layers',
                     lines[0]), lines[0]
    layers = int(re.search(r'(\d+) neuron layers', lines[0]).group(1))
    assert layers > 5
    for value in (qann, snn):
        assert value != value or 0 <= value <= 100  # nan: no boxes at all
