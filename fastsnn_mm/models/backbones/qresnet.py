"""ResNet-18/34 that converts to an SNN as it is.

Differences from mm's ResNet, each needed by the conversion: no max-pool
(a stride-2 conv takes its place), every non-linearity is its own activation
module (QuantReLU by default; one module per call site, so each becomes its
own spiking neuron), and nothing non-linear happens in ``forward`` outside
those modules.
"""
from torch import nn

from ...registry import MODELS
from ._layers import (DEFAULT_INIT, StagedBackbone, build_act, build_norm,
                      check_indices, check_per_stage, conv_bn_act)


class QBasicBlock(nn.Module):
    """conv3x3-BN-act-conv3x3-BN, + shortcut, then an activation of its own."""

    #: conv -> BN pairs that forward runs back to back (the SNN folds them)
    conv_bn_pairs = (('conv1', 'bn1'), ('conv2', 'bn2'))

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
        return self.act2(out + identity)


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
    """

    arch_settings = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

    def __init__(self, depth=18, in_channels=3, base_channels=64,
                 stem_kernel=3, stem_stride=1, strides=(1, 2, 2, 2),
                 dilations=(1, 1, 1, 1), out_indices=(3, ), avg_down=False,
                 act_cfg=dict(type='QuantReLU', bits=3),
                 norm_cfg=dict(type='BN'), norm_eval=False,
                 zero_init_residual=True, init_cfg=DEFAULT_INIT):
        super().__init__(init_cfg=init_cfg)
        if depth not in self.arch_settings:
            raise ValueError(f'QResNet depth must be one of '
                             f'{sorted(self.arch_settings)}, got {depth!r}')
        if stem_kernel not in (3, 7):
            raise ValueError(f'stem_kernel must be 3 or 7, '
                             f'got {stem_kernel!r}')
        if stem_stride not in (1, 2, 4):
            raise ValueError(f'stem_stride must be 1, 2 or 4, '
                             f'got {stem_stride!r}')
        if not isinstance(base_channels, int) or base_channels < 1:
            raise ValueError(f'base_channels must be a positive int, '
                             f'got {base_channels!r}')
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

    def init_weights(self):
        super().init_weights()
        pretrained = isinstance(self.init_cfg, dict) and \
            self.init_cfg.get('type') == 'Pretrained'
        if self.zero_init_residual and not pretrained:
            for m in self.modules():
                if isinstance(m, QBasicBlock):
                    nn.init.zeros_(m.bn2.weight)
