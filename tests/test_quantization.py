"""QANN pieces: QuantReLU, weight quantizers, surgery, calibration,
backbones, classification configs."""
import copy
import glob
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from fastsnn_mm.engine.hooks import QuantAlphaCalibrationHook
from fastsnn_mm.models.backbones import QVGG, QResNet
from fastsnn_mm.quantization import (
    APoTWeightQuantizer,
    QuantConv2d,
    QuantLinear,
    QuantReLU,
    UniformWeightQuantizer,
    calibrate_alpha,
    count_quant_relus,
    count_relus,
    quantize_model,
    quantizer_bits,
    shared_quant_relus,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops on a shared 2-core machine: extra threads only spin."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_resnet(**kw):
    kw.setdefault('base_channels', 4)
    return QResNet(depth=18, **kw)


# -- QuantReLU ---------------------------------------------------------------
@pytest.mark.parametrize('bits', [1, 2, 3, 4])
def test_quant_relu_levels_on_grid(bits):
    alpha, levels = 1.5, 2 ** bits - 1
    q = QuantReLU(bits, alpha)
    y = q(torch.linspace(-1, 3, 2001))
    k = y / (alpha / levels)
    assert torch.allclose(k, k.round(), atol=1e-4)
    assert set(k.round().long().tolist()) == set(range(levels + 1))


def test_quant_relu_gradients_by_hand():
    q = QuantReLU(2, alpha=2.0)  # levels 0, 2/3, 4/3, 2
    x = torch.tensor([-1.0, 0.6, 1.4, 5.0], requires_grad=True)
    y = q(x)
    assert torch.allclose(y, torch.tensor([0, 2 / 3, 4 / 3, 2]))
    y.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    # d/dx: 1 inside [0, alpha] only; d/dalpha: (q - x)/alpha inside,
    # 1 above, 0 below
    # small integers: exact
    assert torch.equal(x.grad, torch.tensor([0.0, 2.0, 3.0, 0.0]))
    d_alpha = 2 * (2 / 3 - 0.6) / 2 + 3 * (4 / 3 - 1.4) / 2 + 4 * 1.0
    assert q.alpha.grad.item() == pytest.approx(d_alpha, abs=1e-5)


# -- weight quantizers -------------------------------------------------------
@pytest.mark.parametrize('cls', [UniformWeightQuantizer, APoTWeightQuantizer])
@pytest.mark.parametrize('bits', [2, 3, 4, 8])
def test_weight_levels_at_most_2_to_b(cls, bits):
    w = torch.randn(64, 16, 3, 3)
    assert cls(bits)(w).unique().numel() <= 2 ** bits


@pytest.mark.parametrize('cls', [UniformWeightQuantizer, APoTWeightQuantizer])
def test_weight_ste_gradients(cls):
    q = cls(3, learnable=True)
    w = torch.randn(200)
    q(w)  # first call sets alpha = max|w|
    with torch.no_grad():
        q.alpha.fill_(w.abs().max().item() / 2)
    w.requires_grad_(True)
    out = q(w)
    out.sum().backward()
    a = q.alpha.detach()
    inside = w.detach().abs() <= a
    # a 0/1 mask: exact
    assert torch.equal(w.grad, inside.float())
    expect = torch.where(inside, (out.detach() - w.detach()) / a,
                         torch.sign(w.detach())).sum()
    assert q.alpha.grad.item() == pytest.approx(expect.item(), abs=1e-4)


def test_learnable_clip_starts_from_loaded_weights():
    conv = QuantConv2d(3, 4, 3, weight_quant=dict(type='apot', bits=4))
    fp32 = nn.Conv2d(3, 4, 3)
    fp32.weight.data.mul_(10)
    missing = conv.load_state_dict(fp32.state_dict(), strict=False)
    assert set(missing.missing_keys) == {'weight_quantizer.alpha',
                                         'weight_quantizer.initialized'}
    conv(torch.randn(1, 3, 5, 5))
    alpha = conv.weight_quantizer.alpha.item()
    assert alpha == pytest.approx(fp32.weight.abs().max().item())
    q2 = QuantConv2d(3, 4, 3, weight_quant=dict(type='apot', bits=4))
    q2.load_state_dict(conv.state_dict())  # a QAT checkpoint keeps alpha
    q2(torch.randn(1, 3, 5, 5))
    assert q2.weight_quantizer.alpha.item() == alpha


def test_quant_layers_use_quantized_weight():
    conv = QuantConv2d(3, 5, 3, padding=1, weight_quant=dict(type='apot',
                                                             bits=4))
    x = torch.randn(2, 3, 8, 8)
    ref = nn.functional.conv2d(x, conv.quantized_weight(), conv.bias,
                               padding=1)
    assert torch.allclose(conv(x), ref)
    lin = QuantLinear.from_float(nn.Linear(4, 2), dict(type='uniform',
                                                      bits=2))
    assert lin.quantized_weight().unique().numel() <= 3
    with pytest.raises(ValueError, match='bits'):
        UniformWeightQuantizer(1)
    with pytest.raises(ValueError, match='type'):
        QuantConv2d(3, 5, 3, weight_quant=dict(type='log', bits=4))


# -- surgery -----------------------------------------------------------------
def mm_resnet18():
    from mmpretrain.models import ResNet
    return ResNet(depth=18)


def test_surgery_replaces_every_relu_of_mm_resnet():
    model = mm_resnet18()
    assert count_relus(model) > 0
    quantize_model(model, 3, alpha=2.0)
    assert count_relus(model) == 0
    assert count_quant_relus(model) > 0
    assert all(m.bits == 3 and m.alpha.item() == 2.0
               for m in model.modules() if isinstance(m, QuantReLU))
    # mm blocks call one self.relu several times: visible only by running
    model.eval()
    shared = shared_quant_relus(model, lambda: model(torch.randn(1, 3, 32,
                                                                 32)))
    assert shared and all(c == 2 for c in shared.values())


@pytest.mark.parametrize('bad', [0, 9, 2.5, '3', True])
def test_surgery_refuses_bad_bits(bad):
    with pytest.raises(ValueError, match='bits'):
        quantize_model(tiny_resnet(act_cfg=dict(type='ReLU')), bad)


def test_surgery_rebits_keeps_alpha_and_skips():
    model = quantize_model(mm_resnet18(), 4)
    quants = [m for m in model.modules() if isinstance(m, QuantReLU)]
    for i, m in enumerate(quants):
        m.alpha.data.fill_(1.0 + i / 4)
    quantize_model(model, 3)
    for i, m in enumerate(quants):
        assert m.bits == 3 and m.alpha.item() == 1.0 + i / 4
    part = quantize_model(mm_resnet18(), 2, skip=['layer1', 'layer2.*.relu'])
    left = [n for n, m in part.named_modules() if type(m) is nn.ReLU]
    assert left and all(n.startswith(('layer1.', 'layer2.')) for n in left)


def test_skip_patterns_match_module_paths_case_sensitively():
    from fastsnn_mm.utils.patterns import path_matches
    assert path_matches('layer1.0.conv1', ['layer1'])
    assert path_matches('layer2.1.relu', ['layer2.*.relu'])
    assert not path_matches('layer10.0', ['layer1'])
    assert not path_matches('layer1.0', ['Layer1'])
    # surgery and the converter's check read skip= alike
    model = quantize_model(tiny_resnet(act_cfg=dict(type='ReLU')), 3,
                           skip=['Stem'])
    assert count_relus(model) == 0


def test_surgery_warns_about_every_module_the_converter_refuses(
        monkeypatch):
    """Surgery and the converter read one table (spiking_rules): what
    surgery leaves full precision with a warning, the converter names."""
    from fastsnn_mm.quantization import surgery
    from fastsnn_mm.spiking import find_unconvertible
    warned = []
    monkeypatch.setattr(surgery, 'print_log',
                        lambda msg, **kw: warned.append(msg))
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 4, 1), nn.ELU(), nn.GroupNorm(2, 4),
                        nn.Sigmoid())
    quantize_model(net, 3)
    refused = {p for p, _, _ in find_unconvertible(net, functions=False)}
    assert refused == {'2', '4', '5', '6'}
    assert len(warned) == 1 and '4 module(s)' in warned[0]
    for path in refused:
        assert f'{path} (' in warned[0]


def test_shared_quant_relus_leaves_no_hooks():
    model = quantize_model(mm_resnet18(), 3)
    with pytest.raises(RuntimeError, match='stop'):
        shared_quant_relus(model, lambda: (_ for _ in ()).throw(
            RuntimeError('stop')))
    assert not any(m._forward_hooks for m in model.modules())


class TinyClassifier(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = tiny_resnet(act_cfg=dict(type='ReLU'))
        self.fc = nn.Linear(32, 3)

    def forward(self, inputs):
        return self.fc(self.backbone(inputs)[-1].mean((2, 3)))


def test_surgery_weights_first_last_and_rebits():
    model = TinyClassifier()
    quantize_model(model, 3, weight=dict(type='uniform', bits=4))
    assert not any(type(m) in (nn.Conv2d, nn.Linear) for m in model.modules())
    bits = quantizer_bits(model)
    assert bits['backbone.stem.0.0.weight_quantizer'] == 8
    assert bits['fc.weight_quantizer'] == 8
    assert bits['backbone.layer2.0.conv1.weight_quantizer'] == 4
    quantize_model(model, 2, weight=dict(type='uniform', bits=3))
    assert quantizer_bits(model)[
        'backbone.layer2.0.conv1.weight_quantizer'] == 3
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 3)
    with pytest.raises(ValueError, match='weight'):
        quantize_model(model, 2, weight='apot')


# -- backbones ---------------------------------------------------------------
def _activations_ok(model, x):
    mods = list(model.modules())
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d))
                   for m in mods)
    assert count_relus(model) == 0 and count_quant_relus(model) > 0
    assert shared_quant_relus(model, lambda: model(x)) == {}


@pytest.mark.parametrize('kw, size, shapes', [
    (dict(), 32, [(4, 32), (8, 16), (16, 8), (32, 4)]),
    (dict(stem_stride=4, stem_kernel=7), 64, [(4, 16), (8, 8), (16, 4),
                                              (32, 2)]),
    (dict(stem_stride=4, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
          avg_down=True), 64, [(4, 16), (8, 8), (16, 8), (32, 8)]),
])
def test_qresnet_shapes(kw, size, shapes):
    model = tiny_resnet(out_indices=(0, 1, 2, 3), **kw)
    model.init_weights()
    x = torch.randn(2, 3, size, size)
    outs = model(x)
    assert [(o.shape[1], o.shape[-1]) for o in outs] == shapes
    assert model.out_channels == [c for c, _ in shapes]
    _activations_ok(model, x)


@pytest.mark.parametrize('arch, n', [('vgg9', 3), ('vgg11', 5), ('vgg16', 5)])
@pytest.mark.parametrize('down', ['avgpool', 'conv'])
def test_qvgg_shapes(arch, n, down):
    model = QVGG(arch, base_channels=4, downsample=down,
                 out_indices=tuple(range(n)))
    x = torch.randn(1, 3, 32, 32)
    outs = model(x)
    assert [o.shape[-1] for o in outs] == [32 // 2 ** i for i in range(n)]
    assert [o.shape[1] for o in outs] == model.out_channels
    _activations_ok(model, x)


def test_backbones_pass_the_converter_check():
    from fastsnn_mm.spiking import check_convertible
    check_convertible(tiny_resnet(stem_stride=4))
    check_convertible(QVGG('vgg9', base_channels=4))


def test_backbone_bad_args():
    with pytest.raises(ValueError, match='depth'):
        QResNet(depth=50)
    from fastsnn_mm.errors import BadArgumentError
    from fastsnn_mm.models.backbones import QTinyYOLO
    for cls in (QResNet, QVGG, QTinyYOLO):  # one check, in StagedBackbone
        for bad in (0, 2.5, '8'):
            with pytest.raises(BadArgumentError, match='base_channels'):
                cls(base_channels=bad)
    assert QVGG('vgg9', base_channels=4).base_channels == 4
    with pytest.raises(ValueError, match='out_indices'):
        QVGG('vgg9', out_indices=(3, ))
    with pytest.raises(ValueError, match='arch'):
        QVGG('vgg19')


# -- checkpoints and calibration -------------------------------------------
def test_4bit_checkpoint_initialises_3bit(tmp_path):
    fp = tiny_resnet(act_cfg=dict(type='ReLU'))
    q4 = quantize_model(copy.deepcopy(fp), 4)
    for i, m in enumerate(m for m in q4.modules() if isinstance(m,
                                                                QuantReLU)):
        m.alpha.data.fill_(1.0 + i / 10)
    torch.save(q4.state_dict(), tmp_path / 'q4.pth')
    q3 = quantize_model(copy.deepcopy(fp), 3)
    q3.load_state_dict(torch.load(tmp_path / 'q4.pth'))
    for a, b in zip(q3.modules(), q4.modules()):
        if isinstance(a, QuantReLU):
            assert a.bits == 3 and a.alpha.item() == b.alpha.item()


@pytest.mark.parametrize('method', ['percentile', 'max', 'mse'])
def test_calibrate_alpha(method):
    model = nn.Sequential(nn.Conv2d(3, 4, 1), QuantReLU(3, alpha=50.0))
    x = torch.randn(4, 3, 8, 8)
    pre = model[0](x).detach()
    out = calibrate_alpha(model, [x], method=method)
    alpha = model[1].alpha.item()
    assert out['1'] == alpha and 0 < alpha <= pre.max().item() + 1e-6
    if method == 'max':
        assert alpha == pytest.approx(pre.max().item())
    with pytest.raises(ValueError, match='method'):
        calibrate_alpha(model, [x], method='kl')


def test_calibrate_alpha_removes_its_hooks_when_a_batch_fails():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), QuantReLU(3, alpha=5.0))
    with pytest.raises(RuntimeError):
        calibrate_alpha(model, [torch.randn(2, 5, 4, 4)])  # 5 channels
    assert not any(m._forward_hooks for m in model.modules())
    assert model[1].alpha.item() == 5.0 and model.training


# -- QAT through mmengine's Runner -----------------------------------------
class ToyData(torch.utils.data.Dataset):
    """Class c: channel c is the brightest (learnable in a few steps)."""

    def __init__(self, n=48):
        g = torch.Generator().manual_seed(0)
        self.y = torch.arange(n) % 3
        self.x = torch.rand(n, 3, 8, 8, generator=g) * 0.5
        self.x[torch.arange(n), self.y] += 0.5

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], labels=self.y[i])


class ToyNet(BaseModel):

    def __init__(self):
        super().__init__()
        self.net = TinyClassifier()

    def forward(self, inputs, labels=None, mode='tensor'):
        logits = self.net(inputs)
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, labels))
        return logits


def make_runner(model, work_dir, iters, **kw):
    return Runner(
        model=model, work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyData(), batch_size=16, num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        randomness=dict(seed=kw.pop('seed', 0)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05,
                                          momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=iters, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=10)),
        **kw)


@torch.no_grad()
def full_data_loss(model):
    data = ToyData()
    model.train()  # batch statistics: running ones lag after few steps
    return F.cross_entropy(model(data.x), data.y).item()


def test_qat_with_runner_lowers_loss(tmp_path):
    torch.manual_seed(0)
    model = quantize_model(ToyNet(), 3, alpha=2.0)
    before = full_data_loss(model)
    runner = make_runner(model, tmp_path, 30)
    runner.train()
    assert len(runner.message_hub.get_scalar('train/loss').data[0]) == 30
    assert full_data_loss(model) < 0.5 * before
    assert all(m.bits == 3 for m in model.modules()
               if isinstance(m, QuantReLU))


def test_calibration_hook_after_load_from(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / 'fp32.pth'
    torch.save(dict(state_dict=ToyNet().state_dict()), ckpt)
    qann = quantize_model(ToyNet(), 3, alpha=100.0)
    runner = make_runner(qann, tmp_path, 1, load_from=str(ckpt))
    runner.load_or_resume()
    QuantAlphaCalibrationHook(num_batches=2, method='max').before_train(runner)
    alphas = [m.alpha.item() for m in qann.modules()
              if isinstance(m, QuantReLU)]
    assert all(0 < a < 100 for a in alphas)
    with pytest.raises(ValueError, match='num_batches'):
        QuantAlphaCalibrationHook(num_batches=0)


# -- configs -----------------------------------------------------------------
CLS_CONFIGS = sorted(glob.glob(osp.join(osp.dirname(__file__), '..', 'configs',
                                        'fastsnn_cls', '*.py')))


@pytest.mark.parametrize('path', CLS_CONFIGS, ids=osp.basename)
def test_cls_configs_build_narrow(path):
    from mmengine import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.base_channels = 8
    cfg.model.head.in_channels = 64
    model = MODELS.build(cfg.model)
    quant = cfg.model.get('quant')
    bits = {m.bits for m in model.modules() if isinstance(m, QuantReLU)}
    assert bits == (set() if quant is None else {quant['bits']})
    assert (count_relus(model) if quant else count_quant_relus(model)) == 0
    assert model(torch.randn(2, 3, 32, 32)).shape == (
        2, cfg.model.head.num_classes)
    if cfg.get('load_from'):
        # progressive chain: the file the previous stage's config writes last
        _, stage, ckpt = cfg.load_from.split('/')
        src = Config.fromfile(osp.join(osp.dirname(path), stage + '.py'))
        assert ckpt == f'epoch_{src.train_cfg.max_epochs}.pth'
