"""BN folded into convs at SNN inference: same network, same checkpoint."""
import torch
from mmcv.cnn import ConvModule
from test_converter import SmallResNet, randomised
from torch import nn

from fastsnn_mm import QuantReLU, convert_to_snn
from fastsnn_mm.spiking.fold_bn import (
    FoldedBatchNorm2d,
    FoldedConv2d,
    conv_bn_pairs,
)


def test_every_resnet_conv_bn_pair_is_folded_and_keys_unchanged():
    net = randomised(SmallResNet(bits=3))
    snn = convert_to_snn(net, fold_bn=True)
    plain = convert_to_snn(net)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    folded = [m for m in snn.modules() if isinstance(m, FoldedBatchNorm2d)]
    assert len(folded) == len(bns) > 0  # stem, blocks and shortcuts
    a, b = snn.state_dict(), plain.state_dict()
    assert a.keys() == b.keys()
    # the same tensors (folding computes at run time)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # an SNN checkpoint still loads into the QANN
    net.load_state_dict({k: v for k, v in a.items()
                         if not k.endswith('theta')}, strict=False)


def test_folded_output_matches_unfolded():
    net = randomised(SmallResNet(bits=3))
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        out = convert_to_snn(net, fold_bn=True)(x)
        ref = convert_to_snn(net)(x)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-3 * ref.abs().max().item())


def test_unfolded_when_training_or_with_autograd():
    net = randomised(SmallResNet(bits=3))
    x = torch.randn(2, 3, 16, 16)
    snn, plain = convert_to_snn(net, fold_bn=True), convert_to_snn(net)
    # with autograd on (layer-wise fine-tuning), conv and BN run as they are
    # both unfolded, the same plan and batch: the same sums
    assert torch.equal(snn(x), plain(x))


def test_fold_follows_weight_changes():
    net = randomised(SmallResNet(bits=3))
    x = torch.randn(2, 3, 16, 16)
    snn = convert_to_snn(net, fold_bn=True)
    with torch.no_grad():
        before = snn(x)
        conv = next(m for m in snn.modules() if isinstance(m, FoldedConv2d))
        conv.weight.mul_(0.5)  # as an optimizer step or load_state_dict does
        after = snn(x)
        plain = convert_to_snn(net)
        plain.load_state_dict(snn.state_dict())
        ref = plain(x)
    assert not torch.equal(before, after)
    assert torch.allclose(after, ref, atol=1e-3 * ref.abs().max().item())


def test_conv_module_folds_only_when_norm_follows_conv():
    act = dict(type='QuantReLU', bits=2)
    post = ConvModule(3, 4, 3, padding=1, norm_cfg=dict(type='BN'),
                      act_cfg=act)
    pre = ConvModule(4, 4, 3, padding=1, norm_cfg=dict(type='BN'),
                     act_cfg=act, order=('norm', 'act', 'conv'))
    pairs = conv_bn_pairs(nn.Sequential(post, pre))
    assert pairs == [(post.conv, post.norm)]
    net = nn.Sequential(post, pre, QuantReLU(bits=2)).eval()
    for m in net.modules():
        if isinstance(m, QuantReLU):
            m.alpha.data.fill_(1.0)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        out = convert_to_snn(net, timesteps=3, fold_bn=True)(x)
        ref = convert_to_snn(net, timesteps=3)(x)
    assert torch.allclose(out, ref, atol=1e-4)


def test_folding_builds_new_modules_that_share_the_tensors():
    """No ``__class__`` swap: the folded conv and BN are new modules that
    hold the very parameters and statistics of the ones they replace."""
    net = randomised(SmallResNet(bits=3)).eval()
    before = {n: type(m) for n, m in net.named_modules()}
    params = {n: p for n, p in net.named_parameters()}
    stats = {n: b for n, b in net.named_buffers()}
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    snn = convert_to_snn(net, copy=False, fold_bn=True)
    # the modules taken out are left as they were
    assert all(type(m) is nn.Conv2d for m in convs)
    folded = [m for m in snn.modules() if isinstance(m, FoldedConv2d)]
    assert folded and not {id(m) for m in folded} & {id(m) for m in convs}
    for name, p in snn.module.named_parameters():
        assert p is params[name], name
    for name, b in snn.module.named_buffers():
        if name in stats:
            assert b is stats[name], name
    for name, m in snn.module.named_modules():
        if isinstance(m, (FoldedConv2d, FoldedBatchNorm2d)):
            assert before[name] in (nn.Conv2d, nn.BatchNorm2d)
            assert m._fold_partner._fold_partner is m
            assert not m.training
