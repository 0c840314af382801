"""Progressive chains (fp32 -> 4 -> 3 -> 2 bits, then layer-wise tuning)
for every task: each stage's ``load_from`` is the last checkpoint the stage
before writes, the weights carry over key for key, the 4-bit step
calibrates the clips, ImageNet starts load, and configs without their data
stop in one line (``tools/train.py``)."""
import copy
import os
import os.path as osp
import re
import subprocess
import sys
from functools import lru_cache

import pytest
import torch
import torchvision
from mmengine.config import Config
from mmengine.registry import init_default_scope

from fastsnn_mm import QuantReLU, check_convertible, quantize_model

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

pytestmark = pytest.mark.usefixtures('one_thread')

#: task chains, in training order: fp32, 4-bit, 3-bit, 2-bit[, layer-wise]
CHAINS = {
    'cls_resnet18_cifar10': [
        'fastsnn_cls/resnet18_cifar10_fp32.py',
        'fastsnn_cls/resnet18_cifar10_4bit.py',
        'fastsnn_cls/resnet18_cifar10_3bit.py',
        'fastsnn_cls/resnet18_cifar10_2bit.py',
        'fastsnn_cls/resnet18_cifar10_2bit_layerwise.py'],
    'cls_vgg11_cifar10': [
        'fastsnn_cls/vgg11_cifar10_fp32.py',
        'fastsnn_cls/vgg11_cifar10_4bit.py',
        'fastsnn_cls/vgg11_cifar10_3bit.py',
        'fastsnn_cls/vgg11_cifar10_2bit.py',
        'fastsnn_cls/vgg11_cifar10_2bit_layerwise.py'],
    'det_tiny_voc': [
        'yolo_fastsnn_voc_fp32.py', 'yolo_fastsnn_voc_4bit.py',
        'yolo_fastsnn_voc.py', 'yolo_fastsnn_voc_2bit.py',
        'yolo_fastsnn_voc_2bit_layerwise.py'],
    'det_resnet34_voc': [
        'yolo_fastsnn_resnet34_voc_fp32.py',
        'yolo_fastsnn_resnet34_voc_4bit.py', 'yolo_fastsnn_resnet34_voc.py',
        'yolo_fastsnn_resnet34_voc_2bit.py',
        'yolo_fastsnn_resnet34_voc_2bit_layerwise.py'],
    'seg_voc12aug': [
        'deeplab_fastsnn_voc12aug_fp32.py',
        'deeplab_fastsnn_voc12aug_4bit.py', 'deeplab_fastsnn_voc12aug.py',
        'deeplab_fastsnn_voc12aug_2bit.py',
        'deeplab_fastsnn_voc12aug_2bit_layerwise.py'],
    'seg_cityscapes': [
        'deeplab_fastsnn_cityscapes_fp32.py',
        'deeplab_fastsnn_cityscapes_4bit.py',
        'deeplab_fastsnn_cityscapes.py',
        'deeplab_fastsnn_cityscapes_2bit.py',
        'deeplab_fastsnn_cityscapes_2bit_layerwise.py'],
}
#: chains whose first stage starts from ImageNet (Tiny-YOLO has no public
#: torchvision / mmpretrain layout; CIFAR ResNet-18's 3x3 stride-1 stem
#: has no ImageNet counterpart)
FROM_SCRATCH = {'det_tiny_voc', 'cls_resnet18_cifar10'}
#: real-data configs outside the chains, started from ImageNet by
#: init_cfg, or from scratch (COCO Tiny-YOLO: no public layout)
STANDALONE = {'deeplab_vgg9_fastsnn_voc12aug.py': True,
              'yolo_fastsnn_coco.py': False}
BITS = [None, 4, 3, 2]


@lru_cache(maxsize=None)
def _parsed(name):
    return Config.fromfile(osp.join(REPO, 'configs', name))


def config(name):
    return copy.deepcopy(_parsed(name))


def work_dir(name):
    """Where tools/train.py writes a config's run by default."""
    return 'work_dirs/' + osp.splitext(osp.basename(name))[0]


def last_checkpoint(cfg):
    """The file a run of ``cfg`` writes last (CheckpointHook saves the last
    epoch / iteration whatever its interval)."""
    tc = cfg.train_cfg
    if tc.get('type') == 'IterBasedTrainLoop' or 'max_iters' in tc:
        return f'iter_{tc.max_iters}.pth'
    return f'epoch_{tc.max_epochs}.pth'


def registry(cfg):
    scope = cfg.get('default_scope') or 'mmpretrain'
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS


def calibrates(cfg):
    return any(h.get('type') == 'QuantAlphaCalibrationHook'
               for h in cfg.get('custom_hooks') or [])


def pretrained_cfg(cfg):
    init = cfg.model.backbone.get('init_cfg')
    return init if isinstance(init, dict) and \
        init.get('type') == 'Pretrained' else None


@pytest.mark.parametrize('chain', sorted(CHAINS))
def test_each_stage_loads_the_previous_stages_last_checkpoint(chain):
    names = CHAINS[chain]
    cfgs = [config(n) for n in names]
    for k, (name, cfg) in enumerate(zip(names, cfgs)):
        quant = cfg.model.get('quant')
        if k < 4:
            assert (quant and quant['bits']) == BITS[k], name
        else:  # layer-wise fine-tuning of the 2-bit QANN
            assert quant['bits'] == 2
            assert cfg.train_cfg.type == 'LayerwiseFinetuneLoop', name
        if k == 0:
            assert not cfg.get('load_from'), name
            assert not calibrates(cfg)
            init = pretrained_cfg(cfg)
            if chain in FROM_SCRATCH:
                assert init is None
            else:
                assert init['checkpoint'].startswith('torchvision://'), name
            continue
        prev = names[k - 1]
        expected = f'{work_dir(prev)}/{last_checkpoint(cfgs[k - 1])}'
        assert cfg.load_from == expected, name
        # the clips are calibrated once, where fp32 weights meet 4 bits
        assert calibrates(cfg) == (k == 1), name
        # later stages overwrite every weight: no ImageNet load at init
        assert pretrained_cfg(cfg) is None, name


@pytest.mark.parametrize('chain', ['det_resnet34_voc', 'seg_voc12aug',
                                   'cls_vgg11_cifar10', 'det_tiny_voc'])
def test_fp32_weights_carry_over_key_for_key(chain):
    """The fp32 stage's checkpoint fills every 4-bit tensor but the clips,
    and the 4-bit model converts; later stages share the 4-bit keys."""
    fp32, q4, q3 = (config(n) for n in CHAINS[chain][:3])
    if chain.startswith('cls'):
        for cfg in (fp32, q4, q3):  # narrow: only the keys matter here
            cfg.model.backbone.base_channels = 8
            cfg.model.head.in_channels = 64
    models = [registry(c).build(c.model) for c in (fp32, q4, q3)]
    assert not any(isinstance(m, QuantReLU) for m in models[0].modules())
    keys = [set(m.state_dict()) for m in models]
    clips = {k for k in keys[1] if k.endswith('.alpha')}
    assert clips and keys[1] - clips == keys[0]
    assert keys[2] == keys[1]
    check_convertible(models[1])
    # the fp32 net is the QANN's float twin: quantizing it gives the same
    quantize_model(models[0], bits=4)
    assert set(models[0].state_dict()) == keys[1]


def tv_state_dict(checkpoint):
    """A random torchvision-format state dict for 'torchvision://NAME'."""
    name = checkpoint.split('://', 1)[1]
    torch.manual_seed(0)
    if name.startswith('vgg'):
        # features only: the classifier (120M weights) is not needed
        from torchvision.models.vgg import cfgs, make_layers
        arch = {'vgg11': 'A', 'vgg13': 'B', 'vgg16': 'D', 'vgg19': 'E'}
        feats = make_layers(cfgs[arch[name.split('_')[0]]],
                            batch_norm=name.endswith('_bn'))
        sd = {f'features.{k}': v for k, v in feats.state_dict().items()}
    else:
        sd = getattr(torchvision.models, name)().state_dict()
    for key, value in sd.items():  # not BN's init values: a loaded
        if key.endswith(('running_mean', 'running_var')):  # tensor shows
            value.copy_(torch.rand_like(value) + 0.5)
    return sd


IMAGENET_STARTS = [CHAINS[c][0] for c in sorted(CHAINS)
                   if c not in FROM_SCRATCH] + \
    [n for n, imagenet in STANDALONE.items() if imagenet]


@pytest.mark.parametrize('name', IMAGENET_STARTS)
def test_imagenet_start_builds_from_a_local_torchvision_file(name, tmp_path):
    """What tools/train.py does with data present (Runner: build, then
    ``model.init_weights()``), with the torchvision:// checkpoint replaced
    by a local file of the same format: every backbone tensor is loaded."""
    cfg = config(name)
    init = pretrained_cfg(cfg)
    sd = tv_state_dict(init['checkpoint'])
    path = str(tmp_path / 'imagenet.pth')
    torch.save(sd, path)
    cfg.model.backbone.init_cfg.checkpoint = path
    model = registry(cfg).build(cfg.model)
    model.init_weights()
    report = model.backbone.pretrained_report
    assert report['missing'] == [] and report['shape_mismatch'] == []
    ours = model.backbone.state_dict()
    assert len(report['loaded']) > 0.8 * len(ours)
    # loaded tensors are copies of the checkpoint's: equal bits
    if 'stem.0.0.weight' in ours:  # ResNet: the stem is the ImageNet one
        assert torch.equal(ours['stem.0.0.weight'], sd['conv1.weight'])
        assert torch.equal(ours['stem.0.1.running_var'],
                           sd['bn1.running_var'])
        assert torch.equal(ours['layer4.1.bn2.running_var'],
                           sd['layer4.1.bn2.running_var'])
    else:
        assert torch.equal(ours['stage1.0.0.weight'],
                           sd['features.0.weight'])
        assert torch.equal(ours['stage1.0.1.running_var'],
                           sd['features.1.running_var'])


REAL_DATA = sorted({n for chain in CHAINS.values() for n in chain} |
                   set(STANDALONE))


@pytest.mark.parametrize('name', REAL_DATA)
def test_missing_data_stops_in_one_line(name, tmp_path, monkeypatch, capsys):
    from fastsnn_mm.utils.launch import check_data
    cfg = config(name)
    monkeypatch.chdir(tmp_path)  # relative data roots: surely absent here
    with pytest.raises(SystemExit) as exc:
        check_data(cfg, ['train', 'val'])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: data/')
    assert 'not found' in err and 'expected' in err


def test_train_tool_stops_in_one_line_without_data(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'),
         osp.join(REPO, 'configs', 'deeplab_fastsnn_voc12aug_fp32.py')],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith('error: data/VOCdevkit/VOC2012')
    assert not (tmp_path / 'work_dirs').exists()


def readme_section():
    text = open(osp.join(REPO, 'README.md')).read()
    start = text.index('## Reproducing the paper on real data (GPU)')
    end = text.find('\n## ', start + 1)
    return text[start:end if end > 0 else None]


def test_readme_runs_every_chain_in_order_and_compares():
    section = readme_section()
    trained = re.findall(r'tools/train\.py\s+configs/(\S+\.py)', section)
    tested = re.findall(r'tools/test\.py\s+configs/(\S+\.py)', section)
    for chain, names in CHAINS.items():
        at = [trained.index(n) for n in names]  # every stage is trained
        assert at == sorted(at), chain
        last = names[-1]
        # the final comparison tests the last stage's config
        assert last in tested or names[-2] in tested, chain
    assert '--compare' in section
    for name in set(trained) | set(tested):
        assert osp.isfile(osp.join(REPO, 'configs', name)), name
