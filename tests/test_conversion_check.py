"""The conversion check: a stock FPN detector's SNN is right on every
pyramid level (its errors are the neurons' own timing errors and what later
layers inherit of them), and a broken conversion or a non-linear call
between spiking layers is caught by layer, with exit code 1 from the tool.
"""
import os.path as osp
import runpy
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

import fastsnn_mm  # noqa: F401
from fastsnn_mm.analysis.conversion_check import (
    check_conversion,
    convert_and_check,
    format_check,
    settle_untrained,
)
from fastsnn_mm.quantization import QuantReLU
from fastsnn_mm.spiking import IFNeuron, convert_to_snn

RETINANET = osp.join(REPO, 'configs', 'stock',
                     'retinanet_r18_fpn_fastsnn_synthetic.py')
TOOL = osp.join(REPO, 'tools/analysis_tools/check_conversion.py')


def _retinanet():
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = Config.fromfile(RETINANET)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def retinanet(one_thread):
    """Stock RetinaNet R18 FPN (make_convertible), random weights with BN
    statistics and clips settled on 96 px random images: every one of the
    five levels (12, 6, 3, 2, 1 px) carries signal."""
    model = _retinanet()
    x = [torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))]
    return settle_untrained(model, x), x


def test_retinanet_snn_is_right_on_every_pyramid_level(retinanet):
    model, x = retinanet
    result = convert_and_check(model, x)
    assert result['ok'], format_check(result)
    # the shared head runs once per level: five call sites per activation
    head = [r for r in result['layers'] if r['layer'].startswith('bbox_head')]
    assert len(head) == 8 * 5
    assert {r['verdict'] for r in result['layers']} <= {
        'exact', 'tie', 'timing', 'inherited'}
    # each level's first head layer is fed by its own FPN output: its
    # errors are only what the backbone's timing errors left it
    levels = [r for r in head if r['layer'].startswith(
        'bbox_head.cls_convs.0.activate')]
    assert len(levels) == 5 and all(r['timing'] + r['tie'] < 0.05
                                    for r in levels)
    # the neurons follow the IF rule and the QANN clips on every level
    assert all(r['theta'] == pytest.approx(r['qann_alpha'], rel=1e-6)
               for r in result['layers'])


def test_a_wrong_threshold_is_caught_by_layer(retinanet):
    model, x = retinanet
    snn = model.qann_copy()
    snn.to_snn()
    broken = snn.bbox_head.cls_convs[2].activate
    broken.theta.mul_(1.5)
    result = check_conversion(model, snn, x)
    assert not result['ok']
    wrong = [r['layer'] for r in result['layers'] if r['verdict'] == 'wrong']
    assert wrong[0] == 'bbox_head.cls_convs.2.activate'
    assert any('threshold' in why for r in result['layers']
               for why in r['reasons'])


class ThreeLayers(nn.Module):
    """conv -> QuantReLU -> conv -> QuantReLU -> conv, with an optional
    leaky ReLU written as two functional ReLUs between the spiking layers
    (the QANN sees it on analog values, the SNN step by step on spikes)."""

    def __init__(self, leaky=False):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.a1 = QuantReLU(bits=3)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.a2 = QuantReLU(bits=3)
        self.c3 = nn.Conv2d(8, 4, 1)
        self.leaky = leaky

    def forward(self, x):
        y = self.c2(self.a1(self.c1(x)))
        if self.leaky:
            y = F.relu(y) - 0.3 * F.relu(-y)
        return self.c3(self.a2(y))


def _calibrated(net, x):
    from fastsnn_mm.quantization.calibration import calibrate_alpha
    calibrate_alpha(net, [x])
    return net.eval()


def test_a_non_linear_call_between_spiking_layers_is_caught():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    clean = _calibrated(ThreeLayers(), x)
    assert convert_and_check(clean, [x])['ok']
    # the same weights with the functional leaky ReLU: the SNN made from
    # the clean model and then run with the call inside (the converter
    # refuses such a model up front; this is what it would run)
    qann = ThreeLayers(leaky=True)
    qann.load_state_dict(clean.state_dict())
    snn = convert_to_snn(clean)
    snn.module.leaky = True
    result = check_conversion(qann.eval(), snn, [x])
    assert not result['ok']
    a2 = result['layers'][1]
    assert a2['layer'] == 'a2' and a2['verdict'] == 'wrong', \
        format_check(result)
    assert 'mean input differs' in a2['reasons'][0]


class SharedHead(nn.Module):
    """One conv + QuantReLU pair applied to three levels of a pyramid, as a
    detection head is: its neuron is called three times a forward."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.act = QuantReLU(bits=2)
        self.head = nn.Conv2d(4, 4, 3, padding=1)
        self.head_act = QuantReLU(bits=2)
        self.out = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        p = self.act(self.stem(x))
        levels = [p, F.avg_pool2d(p, 2), F.avg_pool2d(p, 4)]
        return [self.out(self.head_act(self.head(lvl))) for lvl in levels]


def _dyadic_(net):
    """Weights and biases on a 1/8 grid, clips 1: every sum is exact in
    float32 whatever its order, so every plan gives the same bits."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randint(-4, 5, m.weight.shape,
                                             generator=g) / 8)
                m.bias.copy_(torch.randint(-2, 3, m.bias.shape,
                                           generator=g) / 8)
            if isinstance(m, QuantReLU):
                m.alpha.fill_(1.0)
    return net.eval()


@pytest.mark.float_order
def test_shared_head_keeps_one_state_per_call_in_every_plan():
    net = _dyadic_(SharedHead())
    x = torch.randint(-8, 9, (2, 3, 16, 16),
                      generator=torch.Generator().manual_seed(1)) / 4
    result = convert_and_check(net, [x])
    assert result['ok'], format_check(result)
    assert [r['layer'] for r in result['layers']] == [
        'act', 'head_act', 'head_act#2', 'head_act#3']
    with torch.no_grad():
        folded = convert_to_snn(net)(x)
        # dyadic: exact in any float order, so equal bits are the claim
        for snn in (convert_to_snn(net, time_chunk=1),
                    convert_to_snn(net, time_chunk=2),
                    convert_to_snn(net, mode='streaming')):
            for a, b in zip(snn(x), folded):
                assert torch.equal(a, b)


@pytest.mark.parametrize('device, dtype', [
    ('cpu', torch.float64),
    pytest.param('cuda', torch.float32, marks=pytest.mark.cuda)])
def test_check_runs_where_and_in_what_the_model_runs(device, dtype):
    """The replayed IF rule follows the input's device and dtype: a float64
    model is checked in float64, a GPU model on the GPU."""
    net = _dyadic_(SharedHead())
    x = torch.randint(-8, 9, (2, 3, 16, 16),
                      generator=torch.Generator().manual_seed(1)) / 4
    cpu32 = convert_and_check(net, [x])
    result = convert_and_check(net.to(device, dtype), [x.to(device, dtype)])
    assert result['ok'], format_check(result)
    # the levels k/3 are not dyadic, so only ties may move between the
    # exact and tie shares; every other class is the same
    def classes(r):
        return (r['layer'], r['verdict'], r['elements'], r['timing'],
                r['inherited'], r['exact'] + r['tie'])
    assert [classes(r) for r in result['layers']] == \
        [classes(r) for r in cpu32['layers']]


def _tool(monkeypatch, *args):
    monkeypatch.setattr(sys, 'argv', [TOOL, *map(str, args)])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(TOOL, run_name='__main__')
    return done.value.code


def test_tool_exits_0_on_a_right_and_1_on_a_broken_conversion(
        monkeypatch, tmp_path, capsys, one_thread):
    out = tmp_path / 'check.json'
    args = [RETINANET, '--input-size', 64, 64, '--out-json', out]
    assert _tool(monkeypatch, *args) == 0
    assert 'conversion OK' in capsys.readouterr().out
    assert out.exists()

    # a converter that takes the wrong threshold: exit code 1, by layer
    made = IFNeuron.from_quant_relu.__func__

    def off_by_a_quarter(cls, qrelu):
        neuron = made(cls, qrelu)
        neuron.theta.mul_(1.25)
        return neuron
    monkeypatch.setattr(IFNeuron, 'from_quant_relu',
                        classmethod(off_by_a_quarter))
    assert _tool(monkeypatch, *args) == 1
    printed = capsys.readouterr().out
    assert 'conversion WRONG' in printed
    assert 'wrong: threshold' in printed
