"""ImageNet starts: torchvision and mmpretrain classification checkpoints
(saved here from randomly initialised models; nothing is downloaded) fill
every backbone tensor of QResNet / QVGG, and what does not match is logged."""
import pytest
import torch
import torchvision
from torch import nn

from fastsnn_mm.models.backbones import QVGG, QResNet, _pretrained

pytestmark = pytest.mark.usefixtures('one_thread')


@torch.no_grad()
def random_bn(model, seed=0):
    """Non-default BN statistics and affine terms, so that a tensor left at
    its init cannot pass for a loaded one."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.randn(n, generator=g) * 0.1)
            m.num_batches_tracked.fill_(7)
        elif isinstance(m, nn.Conv2d) and m.bias is not None:
            m.bias.copy_(torch.randn(m.out_channels, generator=g) * 0.1)
    model.eval()
    return model


def save(state_dict, path):
    torch.save(state_dict, path)
    return str(path)


def pretrained(path, **kwargs):
    return dict(type='Pretrained', checkpoint=path, **kwargs)


@pytest.fixture
def logged(monkeypatch):
    """Messages (and levels) the loader logs."""
    seen = []
    monkeypatch.setattr(
        _pretrained, 'print_log',
        lambda msg, logger=None, level=None: seen.append((msg, level)))
    return seen


def tv_features(tv, x):
    """torchvision ResNet up to layer4 (its own forward stops at fc)."""
    x = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
    return tv.layer4(tv.layer3(tv.layer2(tv.layer1(x))))


@pytest.mark.parametrize('depth', [18, 34])
def test_torchvision_resnet_fills_every_tensor(depth, tmp_path, logged):
    torch.manual_seed(depth)
    tv = random_bn(getattr(torchvision.models, f'resnet{depth}')())
    path = save(tv.state_dict(), tmp_path / f'resnet{depth}.pth')
    net = QResNet(depth=depth, stem_kernel=7, stem_stride=2,
                  act_cfg=dict(type='ReLU'), init_cfg=pretrained(path))
    net.init_weights()
    ours, theirs = net.state_dict(), tv.state_dict()
    rename = {'conv1': 'stem.0.0', 'bn1': 'stem.0.1'}
    filled = set()
    for key, value in theirs.items():
        if key.startswith('fc.'):
            continue
        head, _, rest = key.partition('.')
        mine = f'{rename[head]}.{rest}' if head in rename else key
        # loaded: a copy of the checkpoint tensor
        assert torch.equal(ours[mine], value), key
        filled.add(mine)
    assert filled == set(ours)  # every backbone tensor, stem included
    report = net.pretrained_report
    assert report['missing'] == [] and report['unused'] == []
    assert report['classifier'] == ['fc.weight', 'fc.bias']
    msg, level = logged[-1]
    assert f'loaded {len(ours)} of {len(ours)} tensors' in msg
    # no max-pool here: the same function as torchvision's net without it
    tv.maxpool = nn.Identity()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(net.eval()(x)[-1], tv_features(tv, x))


def test_max_pool_stand_in_and_clips_are_listed(tmp_path, logged):
    torch.manual_seed(0)
    tv = random_bn(torchvision.models.resnet18())
    path = save(tv.state_dict(), tmp_path / 'resnet18.pth')
    net = QResNet(depth=18, stem_kernel=7, stem_stride=4,
                  act_cfg=dict(type='ReLU'), init_cfg=pretrained(path))
    net.init_weights()
    w = net.stem[1][0].weight
    eye = torch.eye(64)[:, :, None, None].expand(-1, -1, 3, 3) / 9
    # the stand-in is built as eye / 9: the same elementwise op
    assert torch.equal(w, eye)
    assert net.pretrained_report['missing'] == []
    msg, _ = logged[-1]
    assert 'stem.1' in msg and 'average' in msg
    # stem.1 is a 3x3 stride-2 average: torchvision's net with that pool
    tv.maxpool = nn.AvgPool2d(3, 2, 1)
    x = torch.randn(2, 3, 40, 40)
    torch.testing.assert_close(net.eval()(x)[-1], tv_features(tv, x))

    # a QANN: every non-clip tensor loads, the clips are named in the log
    q = QResNet(depth=18, stem_kernel=7, stem_stride=4,
                act_cfg=dict(type='QuantReLU', bits=3),
                init_cfg=pretrained(path))
    q.init_weights()
    clips = [k for k in q.state_dict() if k.endswith('alpha')]
    assert sorted(q.pretrained_report['clips']) == sorted(clips)
    assert len(clips) == 18
    msg, _ = logged[-1]
    assert '18 QuantReLU clips' in msg and 'QuantAlphaCalibrationHook' in msg


def mmpretrain_checkpoint(backbone, path, num_classes=10):
    """What an mmpretrain classifier checkpoint holds: backbone.* and
    head.* keys under state_dict, next to meta."""
    sd = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    width = backbone.state_dict()['layer4.1.conv2.weight'].shape[0]
    sd['head.fc.weight'] = torch.randn(num_classes, width)
    sd['head.fc.bias'] = torch.randn(num_classes)
    torch.save(dict(meta=dict(epoch=100), state_dict=sd), path)
    return str(path)


def build_mmpretrain(cfg):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


@pytest.mark.parametrize('prefix', ['backbone.', None])
def test_mmpretrain_resnet_fills_every_tensor(prefix, tmp_path, logged):
    torch.manual_seed(1)
    mp = random_bn(build_mmpretrain(dict(type='ResNet', depth=18)))
    path = mmpretrain_checkpoint(mp, tmp_path / 'mmpretrain_r18.pth')
    net = QResNet(depth=18, stem_kernel=7, stem_stride=2,
                  act_cfg=dict(type='ReLU'),
                  init_cfg=pretrained(path, prefix=prefix))
    net.init_weights()
    ours = net.state_dict()
    filled = set()
    for key, value in mp.state_dict().items():
        head, _, rest = key.partition('.')
        mine = {'conv1': 'stem.0.0', 'bn1': 'stem.0.1'}.get(head)
        mine = f'{mine}.{rest}' if mine else key
        # loaded: a copy of the checkpoint tensor
        assert torch.equal(ours[mine], value), key
        filled.add(mine)
    assert filled == set(ours)
    assert net.pretrained_report['unused'] == []
    msg, _ = logged[-1]
    assert "keys under 'backbone.'" in msg
    x = torch.randn(1, 3, 32, 32)
    mp.maxpool = nn.Identity()
    torch.testing.assert_close(net.eval()(x)[-1], mp(x)[-1])


def test_mmpretrain_resnet_v1d_shortcuts_map_and_deep_stem_is_listed(
        tmp_path, logged):
    torch.manual_seed(2)
    mp = random_bn(build_mmpretrain(dict(type='ResNetV1d', depth=18)))
    path = mmpretrain_checkpoint(mp, tmp_path / 'r18_v1d.pth')
    net = QResNet(depth=18, stem_kernel=7, stem_stride=2, avg_down=True,
                  act_cfg=dict(type='ReLU'), init_cfg=pretrained(path))
    net.init_weights()
    theirs, ours = mp.state_dict(), net.state_dict()
    # the shortcut conv / BN sit behind an average pool in both
    for key in ('layer2.0.downsample.1.weight',
                'layer3.0.downsample.2.running_var'):
        # loaded: a copy of the checkpoint tensor
        assert torch.equal(ours[key], theirs[key])
    report = net.pretrained_report
    assert all(k.startswith('stem.0.') for k in report['missing'])
    assert report['unused'] and all(k.startswith('stem.')
                                    for k in report['unused'])
    msg, level = logged[-1]
    assert level == 30 and 'not in the checkpoint' in msg  # WARNING
    assert 'in the checkpoint but not used: stem.0.conv.weight' in msg


def test_wrong_width_or_block_is_one_clear_error(tmp_path):
    torch.manual_seed(3)
    path = save(torchvision.models.resnet18().state_dict(),
                tmp_path / 'r18.pth')
    narrow = QResNet(depth=18, base_channels=16, stem_kernel=7,
                     init_cfg=pretrained(path))
    with pytest.raises(ValueError, match='base_channels=64'):
        narrow.init_weights()
    bottleneck = {'conv1.weight': torch.zeros(64, 3, 7, 7),
                  'layer1.0.conv3.weight': torch.zeros(256, 64, 1, 1)}
    path = save(bottleneck, tmp_path / 'r50_like.pth')
    with pytest.raises(ValueError, match='Bottleneck'):
        QResNet(depth=18, init_cfg=pretrained(path)).init_weights()
    with pytest.raises(ValueError, match="no key starting with 'head.'"):
        QResNet(depth=18, init_cfg=pretrained(path, prefix='head')) \
            .init_weights()


def tv_vgg_features(arch, batch_norm):
    """torchvision's VGG ``features`` (what its checkpoints hold besides
    the classifier), without building the 120M-weight classifier."""
    from torchvision.models.vgg import cfgs, make_layers
    return make_layers(cfgs[arch], batch_norm=batch_norm)


def vgg_reference(features, pool):
    """The same layers with every max-pool replaced by ``pool()``."""
    return nn.Sequential(*[pool() if isinstance(m, nn.MaxPool2d) else m
                           for m in features])


@pytest.mark.parametrize('batch_norm', [True, False])
def test_torchvision_vgg11_maps_conv_by_conv(batch_norm, tmp_path, logged):
    torch.manual_seed(4)
    feats = random_bn(tv_vgg_features('A', batch_norm))
    sd = {f'features.{k}': v for k, v in feats.state_dict().items()}
    sd['classifier.6.weight'] = torch.randn(10, 4096)
    path = save(sd, tmp_path / 'vgg11.pth')
    net = QVGG(arch='vgg11', act_cfg=dict(type='ReLU'),
               init_cfg=pretrained(path))
    net.init_weights()
    report = net.pretrained_report
    assert report['missing'] == [] and report['unused'] == []
    convs = [m for m in feats if isinstance(m, nn.Conv2d)]
    ours = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == len(ours) == 8
    for a, b in zip(convs, ours):
        # loaded: a copy of the checkpoint tensor
        assert torch.equal(a.weight, b.weight)
    # biases folded into the BNs: same outputs, max-pool -> 2x2 average
    ref = vgg_reference(feats, lambda: nn.AvgPool2d(2, 2)).eval()
    ref = nn.Sequential(*list(ref)[:-1])  # QVGG ends before the last pool
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(net.eval()(x)[-1], ref(x), rtol=1e-4,
                               atol=1e-5)
    if not batch_norm:
        assert 'no BN' in logged[-1][0]


def test_mmpretrain_vgg11_bn_maps_conv_by_conv(tmp_path):
    torch.manual_seed(5)
    mp = random_bn(build_mmpretrain(dict(type='VGG', depth=11,
                                         norm_cfg=dict(type='BN'),
                                         with_last_pool=False)))
    sd = {f'backbone.{k}': v for k, v in mp.state_dict().items()}
    path = save(dict(state_dict=sd), tmp_path / 'mp_vgg11.pth')
    net = QVGG(arch='vgg11', act_cfg=dict(type='ReLU'),
               init_cfg=pretrained(path, prefix='backbone.'))
    net.init_weights()
    assert net.pretrained_report['missing'] == []
    assert net.pretrained_report['unused'] == []
    mp.features = vgg_reference(mp.features, lambda: nn.AvgPool2d(2, 2))
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(net.eval()(x)[-1], mp(x)[-1], rtol=1e-4,
                               atol=1e-5)


def test_vgg9_takes_the_first_seven_convs_of_vgg16(tmp_path, logged):
    torch.manual_seed(6)
    feats = random_bn(tv_vgg_features('D', True))
    sd = {f'features.{k}': v for k, v in feats.state_dict().items()}
    path = save(sd, tmp_path / 'vgg16_bn.pth')
    net = QVGG(arch='vgg9', strides=(2, 2, 2), downsample='conv',
               init_cfg=pretrained(path))
    net.init_weights()
    convs = [m for m in feats if isinstance(m, nn.Conv2d)][:7]
    ours = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    # loaded: copies of the checkpoint tensors
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(convs, ours))
    report = net.pretrained_report
    assert report['missing'] == []
    assert report['unused'][0].startswith('features.24.')  # 8th conv on
    assert "last 6 are not used" in logged[-1][0]
    with pytest.raises(ValueError, match='conv widths'):
        QVGG(arch='vgg11', init_cfg=pretrained(path)).init_weights()


def test_own_layout_loads_too_and_tiny_yolo_takes_only_that(tmp_path,
                                                            logged):
    """No public Tiny-YOLO classifier layout exists: QTinyYOLO (like the
    others) takes checkpoints of its own layout, e.g. a whole detector's
    with prefix='backbone.'; the rest of that file is listed."""
    from fastsnn_mm.models.backbones import QTinyYOLO
    torch.manual_seed(7)
    src = random_bn(QTinyYOLO(base_channels=4))
    sd = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    sd['bbox_head.convs_pred.0.weight'] = torch.randn(3, 8, 1, 1)
    path = save(dict(state_dict=sd), tmp_path / 'detector.pth')
    net = QTinyYOLO(base_channels=4,
                    init_cfg=pretrained(path, prefix='backbone.'))
    net.init_weights()
    for key, value in src.state_dict().items():
        # loaded: a copy of the checkpoint tensor
        assert torch.equal(net.state_dict()[key], value), key
    report = net.pretrained_report
    assert report['layout'] == 'QTinyYOLO' and report['missing'] == []
    # a torchvision ResNet has nothing for it: one clear error
    path = save(torchvision.models.resnet18().state_dict(),
                tmp_path / 'r18.pth')
    with pytest.raises(ValueError, match='no tensor of .* fits'):
        QTinyYOLO(base_channels=4, init_cfg=pretrained(path)).init_weights()
