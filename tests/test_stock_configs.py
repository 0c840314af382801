"""Stock mm configs, inherited straight from the installed packages, as
Fast-SNNs: a few training iterations with tools/train.py, then
tools/test.py --compare gives the metric of the QANN and of the SNN.

Also the surgery that makes them convertible (``make_convertible``): what
it replaces, what it refuses, and that without it nothing changes.
"""
import json
import os.path as osp
import runpy
import sys

import pytest
import torch
from conftest import REPO
from mmengine.registry import init_default_scope
from torch import nn

from fastsnn_mm.quantization import QuantReLU, make_convertible
from fastsnn_mm.quantization import convertible as convertible_module
from fastsnn_mm.spiking import UnconvertibleModelError

#: config -> (options shrinking it to 64 px, batch 2, 2 iterations; the
#: metric tools/test.py reports)
_DET_64PX = ['train_dataloader.dataset.pipeline.2.scale=(64,64)',
             'val_dataloader.dataset.pipeline.1.scale=(64,64)',
             'test_dataloader.dataset.pipeline.1.scale=(64,64)',
             'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
             'default_hooks.checkpoint.interval=1']
_EPOCH = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
          'default_hooks.checkpoint.interval=1']
STOCK = {
    'resnet18_cifar10_fastsnn_synthetic': (_EPOCH, 'accuracy/top1'),
    'yolov3_mobilenetv2_fastsnn_synthetic': (_DET_64PX, 'pascal_voc/mAP'),
    'retinanet_r18_fpn_fastsnn_synthetic': (_DET_64PX, 'pascal_voc/mAP'),
    'deeplabv3_r18-d8_fastsnn_synthetic': ([
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        'model.data_preprocessor.size=(64,64)',
        'train_dataloader.dataset.pipeline.2.scale=(64,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'val_dataloader.dataset.pipeline.1.scale=(64,64)',
        'test_dataloader.dataset.pipeline.1.scale=(64,64)'], 'mIoU'),
}


def _data_options(root):
    """The tiny data: 4 training images (2 iterations of 2), 2 to test."""
    opts = [f'{s}_dataloader.dataset.data_root={root}'
            for s in ('train', 'val', 'test')]
    opts += ['train_dataloader.batch_size=2',
             'train_dataloader.dataset.indices=4']
    opts += [f'{s}_dataloader.dataset.indices=2' for s in ('val', 'test')]
    return opts


def _run_tool(name, args, monkeypatch):
    """Run tools/<name> as ``__main__`` in this process (a new process
    would import the mm stack again: longer than the run)."""
    script = osp.join(REPO, 'tools', name)
    monkeypatch.setattr(sys, 'argv', [script, *map(str, args)])
    runpy.run_path(script, run_name='__main__')


@pytest.mark.parametrize('name', sorted(STOCK))
def test_stock_config_trains_converts_and_compares(name, tiny_voc, tmp_path,
                                                   monkeypatch, one_thread):
    shrink, key = STOCK[name]
    config = osp.join(REPO, 'configs', 'stock', f'{name}.py')
    options = ['--cfg-options', *_data_options(tiny_voc), *shrink]
    monkeypatch.chdir(tmp_path)
    work = tmp_path / 'train'
    _run_tool('train.py', [config, '--work-dir', work, *options,
                           'experiment_name=train'], monkeypatch)
    ckpt = (work / 'last_checkpoint').read_text().strip()
    table = tmp_path / 'compare.json'
    _run_tool('test.py', [config, ckpt, '--compare', '--timesteps', '3',
                          '--work-dir', tmp_path / 'test', '--out-json',
                          table, *options, 'experiment_name=test'],
              monkeypatch)
    rows = json.loads(table.read_text())
    assert [(r['model'], r['T']) for r in rows] == [('QANN', '-'),
                                                   ('SNN', 3)]
    for row in rows:
        value = row[key]
        # two iterations: near chance; nan only where a detector drew no box
        assert 0 <= value <= 100 or (value != value and 'mAP' in key)
    # the metrics of so short a run cannot tell a wrong SNN: its spike
    # counts can, layer by layer, against the trained QANN's levels
    with pytest.raises(SystemExit) as checked:
        _run_tool('analysis_tools/check_conversion.py',
                  [config, ckpt, '--input-size', 64, 64, *options],
                  monkeypatch)
    assert checked.value.code == 0


# -- make_convertible ---------------------------------------------------------
class StemAndGate(nn.Module):
    """A ResNet-like stem (max-pool, LeakyReLU) with a squeeze-excitation
    gate (sigmoid) and an SPP-style stride-1 max-pool."""

    def __init__(self, gate=True, spp=True):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.pool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
        self.six = nn.ReLU6()
        self.gate = nn.Sigmoid() if gate else None
        self.spp = nn.MaxPool2d(5, 1, 2) if spp else nn.Identity()

    def forward(self, x):
        x = self.pool(self.act(self.conv(x)))
        y = self.six(x)
        if self.gate is not None:  # a product of two spiking tensors
            y = y * self.gate(x)
        return self.spp(y)


@pytest.mark.parametrize('name', sorted(STOCK) + [
    'deeplabv3_r18-d8_fastsnn_synthetic_layerwise'])
def test_stock_configs_report_on_the_unseen_test_split(name):
    """tools/test.py and the fine-tuning report read the generator's test
    lists; validation during training reads val."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'stock', f'{name}.py'))
    test, val = cfg.test_dataloader.dataset, cfg.val_dataloader.dataset
    assert test.ann_file.endswith('test.txt'), test.ann_file
    assert val.ann_file.endswith('val.txt'), val.ann_file
    if name.endswith('_layerwise'):
        assert cfg.train_cfg.type == 'LayerwiseFinetuneLoop'
        assert cfg.train_cfg.report_on == 'test'


@pytest.fixture
def logged(log_of):
    return log_of(convertible_module)


def test_make_convertible_replaces_and_logs_one_table(logged):
    net = StemAndGate(gate=False, spp=False)
    done = make_convertible(net)
    assert [(p, old) for p, old, _ in done] == [
        ('act', 'LeakyReLU'), ('pool', 'MaxPool2d'), ('six', 'ReLU6')]
    pool = net.pool
    assert isinstance(pool, nn.AvgPool2d) and not pool.count_include_pad
    assert (pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode) == \
        (3, 2, 1, True)
    assert type(net.act) is nn.ReLU and net.act.inplace
    assert len(logged) == 1
    table = logged[0]
    assert table.count('\n| ') == 4  # a header and a row per kind
    assert 'MaxPool2d' in table and 'AvgPool2d' in table and 'pool' in table
    assert 'LeakyReLU' in table and 'QuantReLU' in table
    assert 'train the model by QAT' in table


def test_make_convertible_refuses_what_has_no_substitute_by_path():
    net = StemAndGate()
    with pytest.raises(UnconvertibleModelError) as err:
        make_convertible(net)
    msg = str(err.value)
    assert 'gate: Sigmoid' in msg and 'spikes cannot' in msg
    assert 'spp: MaxPool2d' in msg and 'SPP' in msg
    assert isinstance(net.pool, nn.MaxPool2d)  # nothing replaced then
    # what quant.skip names is left alone (off the spiking path)
    make_convertible(net, skip=['gate', 'spp'])
    assert isinstance(net.pool, nn.AvgPool2d)
    assert isinstance(net.spp, nn.MaxPool2d)


def _stock_deeplab(**quant):
    from mmengine.config import Config
    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(
        REPO, 'configs/stock/deeplabv3_r18-d8_fastsnn_synthetic.py'))
    cfg.model.quant = dict(bits=3, **quant)
    init_default_scope('mmseg')  # an earlier test may have set another
    return MODELS.build(cfg.model)


def test_stock_model_without_make_convertible_is_refused_at_conversion():
    """Off by default: the stem keeps its max-pool and conversion names it;
    with it, the model converts."""
    plain = _stock_deeplab().eval()
    with pytest.raises(UnconvertibleModelError, match='backbone.maxpool'):
        plain.to_snn(timesteps=3)
    fixed = _stock_deeplab(make_convertible=True).eval()
    assert isinstance(fixed.backbone.maxpool, nn.AvgPool2d)
    assert sum(isinstance(m, QuantReLU) for m in fixed.modules()) > 20
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fixed.to_snn(timesteps=3)
        assert fixed.snn_forward(x).shape[:2] == (1, 5)


def test_demo_models_are_unchanged_without_make_convertible(tmp_path):
    """Our own demo config: make_convertible=False (the default) and the
    per-call-site split find nothing to change; keys and outputs are the
    plain surgery's, bit for bit, as QANN and as SNN."""
    from conftest import tiny_cls_config
    from mmpretrain.registry import MODELS

    from fastsnn_mm.quantization import quantize_model
    cfg = tiny_cls_config('unused', tmp_path)
    init_default_scope('mmpretrain')  # an earlier test may have set another
    torch.manual_seed(0)
    ours = MODELS.build(cfg.model).eval()
    plain_cfg = cfg.model.copy()
    quant = plain_cfg.pop('quant')
    torch.manual_seed(0)
    plain = quantize_model(MODELS.build(plain_cfg), **quant).eval()
    assert list(ours.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), plain(x))
        ours.to_snn(timesteps=7)
        plain.to_snn(timesteps=7)
        assert torch.equal(ours(x), plain(x))


@pytest.mark.parametrize('key', ['make_convertible', 'per_call_site'])
def test_quant_flags_must_be_booleans(key, tmp_path):
    from conftest import tiny_cls_config
    from mmpretrain.registry import MODELS

    from fastsnn_mm.errors import BadArgumentError
    cfg = tiny_cls_config('unused', tmp_path)
    cfg.model.quant[key] = 'yes'
    init_default_scope('mmpretrain')
    with pytest.raises(BadArgumentError, match=f'quant.{key} must be True'):
        MODELS.build(cfg.model)
