"""DeepLab-style segmentation: configs build convertible models; QANN and SNN
train/test through the stock mmseg Runner; where theory says the SNN equals
the QANN, it does; folded and streaming runs give the same outputs."""
import copy
import glob
import os
import os.path as osp
from functools import lru_cache

import pytest
import torch
from float_order import dyadic_input, make_dyadic
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from torch import nn

from fastsnn_mm import (
    QuantReLU,
    count_relus,
    find_unconvertible,
    quantize_model,
)
from fastsnn_mm.spiking import IFNeuron

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'deeplab_*.py')))
EXPECTED = {'deeplab_fastsnn_voc12aug.py', 'deeplab_fastsnn_voc12aug_4bit.py',
            'deeplab_fastsnn_voc12aug_2bit.py',
            'deeplab_vgg9_fastsnn_voc12aug.py',
            'deeplab_fastsnn_cityscapes.py', 'deeplab_fastsnn_synthetic.py'}


# the CPUs are shared: one thread is faster than two fighting threads
pytestmark = pytest.mark.usefixtures('one_thread')


@lru_cache(maxsize=None)
def _parsed(path):
    return Config.fromfile(path)  # parsing mmseg:: bases takes seconds


def _config(path):
    return copy.deepcopy(_parsed(path))


def _models():
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    return MODELS


def _randomised(model, alpha=1.0, seed=0):
    """Non-trivial BN statistics and clips, as after training; eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - .5)
            m.running_var.copy_(torch.rand(n, generator=g) + .5)
            m.weight.data.copy_(torch.rand(n, generator=g) + .5)
            m.bias.data.copy_(torch.rand(n, generator=g) * .4)
        if isinstance(m, QuantReLU):
            m.alpha.data.fill_(alpha)
    return model.eval()


def _tiny_deeplab():
    """QResNet-18 (width 4, dilated) + stock ASPPHead (image pool too)."""
    torch.manual_seed(0)
    act = dict(type='QuantReLU', bits=2)
    cfg = dict(
        type='FastSNNEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(type='QResNet', depth=18, base_channels=4,
                      stem_stride=2, strides=(1, 2, 1, 1),
                      dilations=(1, 1, 2, 2), act_cfg=act),
        decode_head=dict(type='ASPPHead', in_channels=32, channels=8,
                         dilations=(1, 2, 3), num_classes=3,
                         norm_cfg=dict(type='BN'), act_cfg=act),
        test_cfg=ConfigDict(mode='whole'), quant=dict(bits=2))
    return _randomised(_models().build(cfg))


def test_all_segmentation_configs_present():
    assert EXPECTED <= {osp.basename(p) for p in CONFIGS}


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_convertible_model(path):
    cfg = _config(path)
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports['imports'] == ['fastsnn_mm']
    model = _models().build(cfg.model)
    assert type(model).__name__ == 'FastSNNEncoderDecoder'
    assert not model.with_auxiliary_head  # nothing off the spiking path
    if cfg.model.get('quant') is None:  # fp32 chain start: 4-bit QAT next
        cfg.model.quant = dict(bits=4)
        quantize_model(model, bits=4)
    bits = {m.bits for m in model.modules() if isinstance(m, QuantReLU)}
    assert bits == {cfg.model.quant.bits}
    assert count_relus(model) == 0
    assert find_unconvertible(model) == []
    assert isinstance(model.decode_head.conv_seg, nn.Conv2d)  # stays linear


@pytest.mark.parametrize('name', ['deeplab_fastsnn_voc12aug.py',
                                  'deeplab_fastsnn_cityscapes.py'])
def test_config_without_data_fails_in_one_line(name, tmp_path, monkeypatch,
                                               capsys):
    from fastsnn_mm.utils.launch import check_data
    cfg = _config(osp.join(REPO, 'configs', name))
    monkeypatch.chdir(tmp_path)  # no data/ here
    with pytest.raises(SystemExit):
        check_data(cfg, ['train', 'val'])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'not found' in err and 'layout' in err


def test_train_one_iteration_then_snn_test_through_runner(tiny_voc,
                                                          tmp_path):
    from mmengine.runner import Runner
    cfg = _config(osp.join(REPO, 'configs', 'deeplab_fastsnn_synthetic.py'))
    cfg.work_dir = str(tmp_path)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = tiny_voc
    cfg.train_dataloader.batch_size = 2
    cfg.model.backbone.base_channels = 8
    cfg.load_from = None  # no classification checkpoint here
    cfg.model.decode_head.in_channels = 64
    cfg.model.decode_head.channels = 16
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1,
                         val_interval=100)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_level = 'WARNING'
    cfg.experiment_name = 'seg_show_dir'  # its own visualizer instance
    tool = _tools_test()
    tool.enable_drawing(cfg)  # as tools/test.py --show-dir vis
    cfg.default_hooks.visualization.interval = 1
    runner = Runner.from_cfg(cfg)
    model = runner.train()
    qann = tool.test_once(runner, 'vis', 'qann')
    assert 'mIoU' in qann
    model.to_snn(neuron='signed')
    assert model.snn_cfg['timesteps'] == 7
    assert model.neurons and not any(
        isinstance(m, QuantReLU) for m in model.modules())
    snn = tool.test_once(runner, 'vis', 'snn_signed_T7')
    assert 'mIoU' in snn and 0 <= snn['mIoU'] <= 100
    # each model keeps its own drawings (they used to overwrite each other)
    drawn = {label: sorted(os.listdir(osp.join(tmp_path, 'vis', label)))
             for label in ('qann', 'snn_signed_T7')}
    assert drawn['qann'] and drawn['qann'] == drawn['snn_signed_T7']


def _tools_test():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'tools_test', osp.join(REPO, 'tools', 'test.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@torch.no_grad()
def test_snn_logits_have_qann_shape_and_exact_values_for_one_layer():
    # a linear backbone and one QuantReLU fed by it: that neuron sees the
    # same input every step, so its count is exactly the QANN level
    torch.manual_seed(0)
    act = dict(type='QuantReLU', bits=3, alpha=1.0)
    cfg = dict(
        type='FastSNNEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(type='QVGG', arch='vgg9', base_channels=4,
                      strides=(1, 2, 2), act_cfg=None),
        decode_head=dict(type='FCNHead', in_channels=16, channels=8,
                         num_convs=1, kernel_size=1, concat_input=False,
                         num_classes=4, norm_cfg=dict(type='BN'),
                         act_cfg=act),
        quant=dict(bits=3))
    model = _randomised(_models().build(cfg))
    assert len([m for m in model.modules() if isinstance(m, QuantReLU)]) == 1
    x = torch.randn(2, 3, 32, 32)
    qann = model(x, mode='tensor')
    model.to_snn(neuron='signed')
    snn = model(x, mode='tensor')
    assert snn.shape == qann.shape == (2, 4, 8, 8)
    assert torch.allclose(snn, qann, atol=1e-5)


@pytest.mark.float_order
@torch.no_grad()
def test_deeplab_snn_shapes_and_folded_equals_streaming():
    # dyadic: folded and streaming batches sum convs in other orders,
    # exactly (the image pool averages 8 x 8 = 2^6 pixels, and its 1 x 1
    # map is upsampled by copying)
    model = make_dyadic(_tiny_deeplab())
    x = dyadic_input((2, 3, 32, 32))
    qann = model._forward(x)
    outs, pool_out = {}, []
    for neuron in ('signed', 'unsigned'):
        for mode in ('folded', 'streaming'):
            model.to_snn(neuron=neuron, mode=mode)
            pool = model.decode_head.image_pool[1].activate
            hook = pool.register_forward_hook(
                lambda m, i, o: pool_out.append(o.abs().sum()))
            outs[neuron, mode] = model._forward(x)
            hook.remove()
            assert outs[neuron, mode].shape == qann.shape == (2, 3, 8, 8)
        # dyadic: exact in any float order
        assert torch.equal(outs[neuron, 'folded'], outs[neuron, 'streaming'])
    assert len({id(n) for n in model.neurons}) == len(model.neurons) > 20
    assert all(isinstance(n, IFNeuron) for n in model.neurons)
    # the image-pool branch is on the spiking path and its neuron fires
    assert isinstance(pool, IFNeuron) and model.snn_cfg['timesteps'] == 3
    assert sum(pool_out) > 0


@torch.no_grad()
def test_snn_predict_gives_stock_seg_data_samples():
    from mmseg.structures import SegDataSample
    model = _tiny_deeplab()
    x = torch.randn(1, 3, 32, 32)
    meta = dict(img_shape=(32, 32), ori_shape=(40, 40), pad_shape=(32, 32),
                padding_size=[0, 0, 0, 0])
    qann = model.predict(x, [SegDataSample(metainfo=meta)])[0]
    model.to_snn()
    snn = model.predict(x, [SegDataSample(metainfo=meta)])[0]
    assert snn.pred_sem_seg.data.shape == qann.pred_sem_seg.data.shape == (
        1, 40, 40)
    assert snn.seg_logits.data.shape == (3, 40, 40)
