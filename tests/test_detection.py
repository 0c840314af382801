"""YOLO-style detection: configs build; QANN and SNN train/test through the
stock mmdet Runner; where theory says the SNN equals the QANN, it does."""
import copy
import glob
import os.path as osp

import pytest
import torch
from float_order import dyadic_input, make_dyadic
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from torch import nn

from fastsnn_mm import QuantReLU, check_convertible, quantize_model
from fastsnn_mm.spiking import IFNeuron

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'yolo_fastsnn_*.py')))
EXPECTED = {'yolo_fastsnn_voc.py', 'yolo_fastsnn_voc_4bit.py',
            'yolo_fastsnn_voc_2bit.py', 'yolo_fastsnn_resnet34_voc.py',
            'yolo_fastsnn_coco.py', 'yolo_fastsnn_synthetic.py'}


# the CPUs are shared: one thread is faster than two fighting threads
pytestmark = pytest.mark.usefixtures('one_thread')


def _models():
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    return MODELS


def test_all_detection_configs_present():
    assert EXPECTED <= {osp.basename(p) for p in CONFIGS}


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_convertible_model(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports['imports'] == ['fastsnn_mm']
    model = _models().build(cfg.model)
    assert type(model).__name__ == 'FastSNNSingleStageDetector'
    if cfg.model.get('quant') is None:  # fp32 chain start: 4-bit QAT next
        cfg.model.quant = dict(bits=4)
        quantize_model(model, bits=4)
    bits = {m.bits for m in model.modules() if isinstance(m, QuantReLU)}
    assert bits == {cfg.model.quant.bits}
    check_convertible(model)  # no LeakyReLU / max-pool left anywhere


def test_qtiny_yolo_strides_and_bad_args():
    from fastsnn_mm.models.backbones import QTinyYOLO
    net = QTinyYOLO(base_channels=4)  # Tiny-YOLO layout: strides 8/16/32
    outs = net(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(32, 8, 8), (64, 4, 4),
                                                 (128, 2, 2)]
    assert net.out_channels == [32, 64, 128]
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    with pytest.raises(ValueError, match='strides'):
        QTinyYOLO(strides=(2, 3))
    with pytest.raises(ValueError, match='stage_blocks'):
        QTinyYOLO(stage_blocks=(1, 1))


def test_tiny_yolo_neck_shapes_and_bad_args():
    from fastsnn_mm.models.necks import TinyYOLONeck
    neck = TinyYOLONeck([32, 16, 8], [16, 8, 4])
    feats = (torch.rand(1, 8, 16, 16), torch.rand(1, 16, 8, 8),
             torch.rand(1, 32, 4, 4))
    outs = neck(feats)
    assert [tuple(o.shape[1:]) for o in outs] == [(16, 4, 4), (8, 8, 8),
                                                 (4, 16, 16)]
    assert sum(isinstance(m, QuantReLU) for m in neck.modules()) == 5
    with pytest.raises(ValueError, match='one entry per scale'):
        TinyYOLONeck([32, 16], [16])
    with pytest.raises(ValueError, match='expected 3 feature maps'):
        neck(feats[:2])


def test_voc_config_without_data_fails_in_one_line(tmp_path, monkeypatch,
                                                   capsys):
    from fastsnn_mm.utils.launch import check_data
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'yolo_fastsnn_voc.py'))
    monkeypatch.chdir(tmp_path)  # no data/VOCdevkit here
    with pytest.raises(SystemExit):
        check_data(cfg, ['train', 'val'])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'VOCdevkit' in err and 'JPEGImages' in err


def _synthetic_cfg(data_root, work_dir):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'yolo_fastsnn_synthetic.py'))
    cfg.work_dir = str(work_dir)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = data_root
        loader.batch_size = 4
    cfg.train_dataloader.dataset.indices = 4  # one iteration
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1,
                         val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_level = 'WARNING'
    return cfg


def _check_preds(samples):
    for s in samples:
        pred = s.pred_instances
        n = len(pred)
        assert pred.bboxes.shape == (n, 4)
        assert pred.scores.shape == (n, ) and pred.labels.shape == (n, )


def test_runner_trains_qann_and_tests_snn(tiny_voc, tmp_path):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(_synthetic_cfg(tiny_voc, tmp_path))
    runner.train()
    model = runner.model
    num_quant = sum(isinstance(m, QuantReLU) for m in model.modules())
    batch = next(iter(runner.test_dataloader))
    qann_preds = model.test_step(batch)

    model.to_snn()
    assert model.is_snn and model.snn_cfg['timesteps'] == 7
    assert len(model.neurons) == num_quant
    snn_preds = model.test_step(batch)
    assert len(snn_preds) == len(qann_preds)
    _check_preds(qann_preds)
    _check_preds(snn_preds)
    metrics = runner.test()
    assert 'pascal_voc/mAP' in metrics


class OneNeuronBackbone(nn.Module):
    """conv-BN-QuantReLU on the image, then avg-pools to strides 8/16/32:
    the only neuron layer sees a constant input, so its spike count over
    T = 2^b - 1 steps equals the QANN level exactly."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, 2, 1)
        self.bn = nn.BatchNorm2d(channels)
        self.act = QuantReLU(3, alpha=1.5)
        self.pools = nn.ModuleList(nn.AvgPool2d(k) for k in (4, 8, 16))

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        return tuple(p(x) for p in self.pools)


def _tiny_yolo(act_cfg, in_channels):
    head = [8, 8, 8]
    return ConfigDict(
        type='FastSNNSingleStageDetector',
        data_preprocessor=dict(type='DetDataPreprocessor'),
        backbone=dict(type='QTinyYOLO', base_channels=4, stem_stride=2,
                      strides=(2, 2, 2, 2), stage_blocks=(0, 0, 1, 0),
                      out_indices=(1, 2, 3)),
        neck=dict(type='YOLOV3Neck', num_scales=3, in_channels=in_channels,
                  out_channels=head, act_cfg=act_cfg),
        bbox_head=dict(
            type='YOLOV3Head', num_classes=4, in_channels=head,
            out_channels=head, act_cfg=act_cfg,
            anchor_generator=dict(
                type='YOLOAnchorGenerator',
                base_sizes=[[(40, 40), (56, 48)], [(24, 24), (32, 28)],
                            [(12, 12), (16, 20)]],
                strides=[32, 16, 8]),
            bbox_coder=dict(type='YOLOBBoxCoder'),
            featmap_strides=[32, 16, 8]),
        # keep every prediction so the comparison sees many boxes
        test_cfg=dict(nms_pre=200, min_bbox_size=0, score_thr=0.0,
                      conf_thr=0.0, nms=dict(type='nms', iou_threshold=0.45),
                      max_per_img=30),
        quant=dict(bits=3))


def _randomise(model, seed=0):
    """Non-trivial BN statistics, unit-gain conv weights (activations stay
    O(1) through the deep linear neck), eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.5 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            elif isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) /
                               fan_in ** 0.5)
    return model.eval()


def _samples(n, size):
    from mmdet.structures import DetDataSample
    meta = dict(img_shape=(size, size), ori_shape=(size, size),
                pad_shape=(size, size), batch_input_shape=(size, size),
                scale_factor=(1.0, 1.0))
    return [DetDataSample(metainfo=meta) for _ in range(n)]


def _levels(out):
    return out[0]  # YOLOV3Head.forward returns ((level maps...), )


def test_snn_equals_qann_with_one_neuron_layer():
    model = _models().build(_tiny_yolo(None, [8, 8, 8]))
    model.backbone = OneNeuronBackbone()
    qann = _randomise(model)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    snn = copy.deepcopy(qann)
    snn.to_snn()  # T = 7
    assert len(snn.neurons) == 1
    with torch.no_grad():
        ref, out = _levels(qann._forward(x)), _levels(snn._forward(x))
        for a, b in zip(ref, out):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
        p_ref = qann.predict(x, _samples(2, 64), rescale=False)
        p_snn = snn.predict(x, _samples(2, 64), rescale=False)
    for a, b in zip(p_ref, p_snn):
        a, b = a.pred_instances, b.pred_instances
        assert len(a) == len(b) > 0
        assert torch.equal(a.labels, b.labels)  # integer class labels
        assert torch.allclose(a.bboxes, b.bboxes, atol=1e-4)
        assert torch.allclose(a.scores, b.scores, atol=1e-5)


def _run_recording_spikes(snn, x):
    """``_forward`` outputs and every neuron's spikes as [T, B, ...]."""
    T, B = snn.snn_cfg['timesteps'], x.shape[0]
    spikes = {}

    def record(mod, inputs, out, name):
        if out.shape[0] % B:  # a one-image pass sizing the plan
            return
        steps = out.reshape(-1, B, *out.shape[1:])  # folded: one call, T steps
        spikes.setdefault(name, []).extend(steps)  # streaming: T calls

    handles = [n.register_forward_hook(
        lambda m, i, o, name=name: record(m, i, o, name))
        for name, n in snn.named_modules() if isinstance(n, IFNeuron)]
    with torch.no_grad():
        out = _levels(snn._forward(x))
    for h in handles:
        h.remove()
    return out, {k: torch.stack(v) for k, v in spikes.items()}, T


@pytest.mark.float_order
@pytest.mark.parametrize('neuron', ['signed', 'unsigned'])
def test_folded_and_streaming_give_identical_spikes(neuron):
    act = dict(type='QuantReLU', bits=3, alpha=1.0)
    # dyadic (unit-gain weights on a power-of-two grid, nearest upsampling
    # only): folded and streaming batches sum convs in other orders, exactly
    model = make_dyadic(_models().build(_tiny_yolo(act, [64, 32, 16])))
    x = dyadic_input((2, 3, 64, 64), seed=2)
    runs = {}
    for mode in ('folded', 'streaming'):
        snn = copy.deepcopy(model)
        # folded: all T steps in one call (the recorder expects that)
        snn.to_snn(neuron=neuron, mode=mode,
                   time_chunk=100 if mode == 'folded' else None)
        runs[mode] = _run_recording_spikes(snn, x)
    (f_out, f_spk, T), (s_out, s_spk, _) = runs['folded'], runs['streaming']
    assert f_spk.keys() == s_spk.keys() and len(f_spk) == 26
    for name in f_spk:
        assert f_spk[name].shape[0] == T
        # dyadic: exact in any float order
        assert torch.equal(f_spk[name], s_spk[name]), name
    # both modes sum the T steps in the same order, the convs exactly:
    # bit-identical outputs
    for a, b in zip(f_out, s_out):
        assert torch.equal(a, b), (a - b).abs().max()
