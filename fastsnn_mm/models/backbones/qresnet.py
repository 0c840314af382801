"""ResNet-18/34 that converts to an SNN as it is.

Differences from mm's ResNet, each needed by the conversion: no max-pool
(a stride-2 conv takes its place), every non-linearity is its own activation
module (QuantReLU by default; one module per call site, so each becomes its
own spiking neuron), and nothing non-linear happens in ``forward`` outside
those modules.
"""
import torch
from torch import nn

from ...registry import MODELS
from ...spiking import deferred_bn
from ._layers import (
    DEFAULT_INIT,
    StagedBackbone,
    build_act,
    build_norm,
    check_indices,
    check_per_stage,
    conv_bn_act,
)


class QBasicBlock(nn.Module):
    """conv3x3-BN-act-conv3x3-BN, + shortcut, then an activation of its own."""

    #: conv -> BN pairs that forward runs back to back (the SNN folds them)
    conv_bn_pairs = (('conv1', 'bn1'), ('conv2', 'bn2'))
    #: BN -> activation pairs, the BN's output read by nothing else, or
    #: only through ``deferred_bn.add_`` (the SNN's neuron applies that
    #: BN, and the sum, in its own pass)
    norm_act_pairs = (('bn1', 'act1'), ('bn2', 'act2'))

    def __init__(self, in_ch, out_ch, stride, dilation, norm_cfg, act_cfg,
                 avg_down=False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, dilation, dilation,
                               bias=False)
        self.bn1 = build_norm(norm_cfg, out_ch)
        self.act1 = build_act(act_cfg)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, dilation, dilation,
                               bias=False)
        self.bn2 = build_norm(norm_cfg, out_ch)
        self.act2 = build_act(act_cfg)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            layers = []
            if avg_down and stride != 1:
                layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True,
                                           count_include_pad=False))
                stride = 1
            layers += [nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                       build_norm(norm_cfg, out_ch)]
            self.downsample = nn.Sequential(*layers)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # in place, as mm's BasicBlock (BN's backward needs its input, not
        # its output); in the SNN the neuron may do BN and sum in its pass
        return self.act2(deferred_bn.add_(out, identity))


@MODELS.register_module()
class QResNet(StagedBackbone):
    """Convertible ResNet (BasicBlock, depth 18 or 34).

    Args:
        depth: 18 or 34.
        in_channels: input channels.
        base_channels: width of the first stage (64 in the paper; small
            values give tiny test models); stage i has base * 2^i channels.
        stem_kernel: 3 or 7, the first conv's kernel.
        stem_stride: 1 (CIFAR), 2, or 4 (ImageNet-like: the stem conv and a
            second 3x3 conv, both stride 2, where ResNet has a max-pool).
        strides, dilations: per stage; dilate later stages for
            segmentation, e.g. strides (1, 2, 1, 1), dilations (1, 1, 2, 4).
        out_indices: stages whose outputs are returned (a tuple).
        avg_down: shortcut downsampling by avg-pool + 1x1 conv instead of a
            strided 1x1 conv.
        act_cfg: activation of every block (``dict(type='ReLU')`` for a
            full-precision net that ``quantize_model`` turns into a QANN).
        norm_cfg: normalisation after each conv.
        norm_eval: keep norm layers in eval mode while training.
        zero_init_residual: start each block's last BN at zero gamma.
        init_cfg: as mm backbones; ``dict(type='Pretrained',
            checkpoint='torchvision://resnet34')`` (or a local file, or an
            mmpretrain ResNet classifier checkpoint, whose ``backbone.``
            keys are taken) maps every tensor of the ImageNet net: conv1 /
            bn1 to ``stem.0``, the blocks by name. ImageNet weights fit
            ``base_channels=64`` and ``stem_kernel=7``; ``stem_stride=4``
            adds ``stem.1``, a stride-2 conv where ResNet max-pools, which
            no checkpoint holds: it starts as a 3x3 average (see
            :meth:`after_pretrained`). Bottleneck checkpoints (ResNet-50
            and deeper) and mmpretrain's deep stems (ResNetV1c/d) have no
            counterpart here.
    """

    arch_settings = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

    def __init__(self, depth=18, in_channels=3, base_channels=64,
                 stem_kernel=3, stem_stride=1, strides=(1, 2, 2, 2),
                 dilations=(1, 1, 1, 1), out_indices=(3, ), avg_down=False,
                 act_cfg=dict(type='QuantReLU', bits=3),
                 norm_cfg=dict(type='BN'), norm_eval=False,
                 zero_init_residual=True, init_cfg=DEFAULT_INIT):
        super().__init__(base_channels, init_cfg=init_cfg)
        if depth not in self.arch_settings:
            raise ValueError(f'QResNet depth must be one of '
                             f'{sorted(self.arch_settings)}, got {depth!r}')
        if stem_kernel not in (3, 7):
            raise ValueError(f'stem_kernel must be 3 or 7, '
                             f'got {stem_kernel!r}')
        if stem_stride not in (1, 2, 4):
            raise ValueError(f'stem_stride must be 1, 2 or 4, '
                             f'got {stem_stride!r}')
        blocks = self.arch_settings[depth]
        strides = check_per_stage('strides', strides, len(blocks))
        dilations = check_per_stage('dilations', dilations, len(blocks))
        self.out_indices = check_indices(out_indices, len(blocks))
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual

        stem = [conv_bn_act(in_channels, base_channels, stem_kernel,
                            min(stem_stride, 2), 1, norm_cfg, act_cfg)]
        if stem_stride == 4:
            stem.append(conv_bn_act(base_channels, base_channels, 3, 2, 1,
                                    norm_cfg, act_cfg))
        self.stem = nn.Sequential(*stem)

        self.layer_names = []
        in_ch = base_channels
        for i, (n, s, d) in enumerate(zip(blocks, strides, dilations)):
            out_ch = base_channels * 2 ** i
            layer = nn.Sequential(*[
                QBasicBlock(in_ch if j == 0 else out_ch, out_ch,
                            s if j == 0 else 1, d, norm_cfg, act_cfg,
                            avg_down) for j in range(n)])
            in_ch = out_ch
            self.add_module(f'layer{i + 1}', layer)
            self.layer_names.append(f'layer{i + 1}')
        self.stage_names = self.layer_names
        self.out_channels = [base_channels * 2 ** i for i in self.out_indices]

    def after_default_init(self):
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, QBasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def map_pretrained(self, state_dict):
        """torchvision / mmpretrain ResNet keys -> ours (see ``init_cfg``)."""
        if 'stem.0.0.weight' in state_dict or \
                not any(k.startswith('layer1.') for k in state_dict):
            return super().map_pretrained(state_dict)
        if any('.conv3.' in k for k in state_dict):
            raise ValueError(
                'the checkpoint is a Bottleneck ResNet (depth 50 or more: '
                'its blocks have conv3); QResNet has BasicBlocks (depth 18 '
                'or 34): use a resnet18 / resnet34 checkpoint')
        ours = self.state_dict()
        mapped, used = {}, []
        for key, value in state_dict.items():
            head, _, rest = key.partition('.')
            if head in ('conv1', 'bn1'):
                new = ('stem.0.0.' if head == 'conv1' else 'stem.0.1.') + rest
            elif head.startswith('layer'):
                new = self._block_key(key, state_dict, ours)
            else:
                continue
            if new in ours:
                mapped[new] = value
                used.append(key)
        return mapped, used, 'ResNet (torchvision / mmpretrain)', []

    @staticmethod
    def _block_key(key, state_dict, ours):
        """Block keys match ours except the shortcut's index, which an
        average pool in front (avg_down, mmpretrain's ResNetV1d) shifts."""
        parts = key.split('.')
        if len(parts) < 5 or parts[2] != 'downsample':
            return key
        block = '.'.join(parts[:2])
        theirs = 0 if f'{block}.downsample.0.weight' in state_dict else 1
        mine = 0 if f'{block}.downsample.0.weight' in ours else 1
        parts[3] = str(int(parts[3]) - theirs + mine)
        return '.'.join(parts)

    @torch.no_grad()
    def after_pretrained(self, loaded):
        """With ``stem_stride=4``, ``stem.1`` stands where ResNet has its
        3x3 stride-2 max-pool. ImageNet nets have no weights for it, so it
        starts as the linear stand-in for that pool: a 3x3 stride-2 average
        per channel (identity BN), which the following layers can use as
        they are; training then adapts it."""
        if len(self.stem) < 2 or 'stem.0.0.weight' not in loaded or \
                'stem.1.0.weight' in loaded:
            return [], None
        conv, bn = self.stem[1][0], self.stem[1][1]
        conv.weight.zero_()
        for c in range(conv.out_channels):
            conv.weight[c, c] = 1.0 / conv.weight[c, c].numel()
        bn.reset_running_stats()
        bn.running_var.fill_(1.0 - bn.eps)
        nn.init.ones_(bn.weight)
        nn.init.zeros_(bn.bias)
        keys = [f'stem.1.{k}' for k in self.stem[1].state_dict()
                if not k.endswith('alpha')]
        return keys, ('stem.1 (a stride-2 conv where ResNet max-pools) has '
                      'no ImageNet counterpart: set to a 3x3 stride-2 '
                      'average with an identity BN')
