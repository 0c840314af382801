"""Drop-in use: the training and test scripts shipped inside mmpretrain,
mmdet and mmseg (``<package>/.mim/tools/``) run our synthetic configs
unchanged: training, then the test script as a QANN (the same metric as
the training run's validation) and as an SNN (``model.snn`` set by
``--cfg-options``), and the metric comes out. The SNN's log says it ran
as an SNN, in one line.

Everything is shrunk to about one training iteration on the tiny data,
and the scripts run as ``__main__`` in the test's process.
"""
import glob
import importlib
import os.path as osp
import re
import runpy
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
         'train_dataloader.batch_size=16',
         'train_dataloader.dataset.pipeline.2.scale=(64,64)',
         'val_dataloader.dataset.pipeline.1.scale=(64,64)',
         'test_dataloader.dataset.pipeline.1.scale=(64,64)'],
        'pascal_voc/mAP', 'epoch_1.pth'),
    'segmentation': (
        'mmseg', 'configs/deeplab_fastsnn_synthetic.py',
        ['train_cfg.max_iters=1', 'train_cfg.val_interval=1',
         'default_hooks.checkpoint.interval=1', 'load_from=None',
         'train_dataloader.batch_size=2',
         'val_dataloader.dataset.pipeline.1.scale=(64,64)',
         'test_dataloader.dataset.pipeline.1.scale=(64,64)'],
        'mIoU', 'iter_1.pth'),
}


def _mim_tool(package, name):
    mod = importlib.import_module(package)
    path = osp.join(osp.dirname(mod.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        pytest.fail(f'{package} ships no {path}')
    return path


def _data_options(root):
    """The tiny data; validation and test on its first 4 images."""
    return [f'{s}_dataloader.dataset.data_root={root}'
            for s in ('train', 'val', 'test')] + [
                f'{s}_dataloader.dataset.indices=4' for s in ('val', 'test')]


def _run(script, args, work_dir, monkeypatch):
    """Run a stock script as ``__main__`` in this process (a new process
    would import the whole mm stack again: longer than the run itself);
    returns the log file its Runner wrote.

    Each run gets a work dir and an experiment name of its own: mmengine
    names the logger after the experiment, by default config name plus
    the second the run started, and hands a run that starts within the
    same second as an earlier one that earlier run's logger, log file and
    all (seen in CI: the SNN test run wrote into the QANN test run's log).
    ``args`` end with the ``--cfg-options`` values."""
    assert not osp.exists(work_dir), f'{work_dir} is used by another run'
    assert '--cfg-options' in args
    name = osp.basename(work_dir)
    monkeypatch.setattr(sys, 'argv', [
        script, *map(str, args), f'experiment_name={name}',
        '--work-dir', str(work_dir)])
    runpy.run_path(script, run_name='__main__')
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        return f.read()


def _metric(log, key):
    found = re.findall(rf'{re.escape(key)}: (-?[\d.]+|nan)', log)
    assert found, f'no {key} in the log:\n{log[-3000:]}'
    return float(found[-1])


@pytest.mark.parametrize('task', sorted(TASKS))
def test_stock_mm_scripts_train_and_test_our_config(task, tiny_voc,
                                                    tmp_path, monkeypatch):
    package, config, shrink, key, ckpt = TASKS[task]
    options = ['--cfg-options', *_data_options(tiny_voc), *shrink]
    work = tmp_path / 'work'
    monkeypatch.chdir(tmp_path)
    config = osp.join(REPO, config)
    log = _run(_mim_tool(package, 'train.py'), [config, *options], work,
               monkeypatch)
    trained = _metric(log, key)  # the training run's validation
    log = _run(_mim_tool(package, 'test.py'),
               [config, work / ckpt, *options], tmp_path / 'test_qann',
               monkeypatch)
    qann = _metric(log, key)
    assert qann == trained or qann != qann  # same weights, same images
    assert 'running as an SNN' not in log
    log = _run(_mim_tool(package, 'test.py'),
               [config, work / ckpt, *options,
                'model.snn.timesteps=3', 'model.snn.neuron=signed'],
               tmp_path / 'test_snn', monkeypatch)
    snn = _metric(log, key)
    lines = [line for line in log.splitlines() if 'running as an SNN' in line]
    assert len(lines) == 1, lines
    assert re.search(r'T=3, neuron=signed, mode=folded, \d+ neuron layers',
                     lines[0]), lines[0]
    assert int(re.search(r'(\d+) neuron layers', lines[0]).group(1)) > 5
    for value in (qann, snn):
        assert value != value or 0 <= value <= 100  # nan: no boxes at all
