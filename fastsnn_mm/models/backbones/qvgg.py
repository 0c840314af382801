"""VGG that converts to an SNN as it is: BN after every conv, one activation
module per conv, and downsampling by stride-2 conv or average pooling
(average pooling of spikes is linear; max-pooling is not)."""
from torch import nn

from ...registry import MODELS
from ._layers import (DEFAULT_INIT, StagedBackbone, check_indices,
                      check_per_stage, conv_bn_act)


@MODELS.register_module()
class QVGG(StagedBackbone):
    """Convertible VGG; channels per stage at ``base_channels=64``.

    Args:
        arch: 'vgg9' (3 stages, 7 convs: a light backbone for segmentation;
            the name counts two linear layers of its classifier form),
            'vgg11' or 'vgg16'.
        in_channels: input channels.
        base_channels: width multiplier as the first stage's width
            (64 = the original widths).
        strides, dilations: per stage; a stage with stride 2 downsamples at
            its start (``downsample`` says how).
        downsample: 'avgpool' (2x2 average pool) or 'conv' (the stage's
            first conv has stride 2).
        out_indices: stages whose outputs are returned (a tuple).
        act_cfg, norm_cfg, norm_eval: as in :class:`QResNet`.
    """

    arch_settings = {
        'vgg9': ((64, 64), (128, 128), (256, 256, 256)),
        'vgg11': ((64, ), (128, ), (256, 256), (512, 512), (512, 512)),
        'vgg16': ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
                  (512, 512, 512)),
    }

    def __init__(self, arch='vgg11', in_channels=3, base_channels=64,
                 strides=None, dilations=None, downsample='avgpool',
                 out_indices=None, act_cfg=dict(type='QuantReLU', bits=3),
                 norm_cfg=dict(type='BN'), norm_eval=False,
                 init_cfg=DEFAULT_INIT):
        super().__init__(init_cfg=init_cfg)
        if arch not in self.arch_settings:
            raise ValueError(f'QVGG arch must be one of '
                             f'{sorted(self.arch_settings)}, got {arch!r}')
        if downsample not in ('avgpool', 'conv'):
            raise ValueError(f"downsample must be 'avgpool' or 'conv', "
                             f'got {downsample!r}')
        if not isinstance(base_channels, int) or base_channels < 1:
            raise ValueError(f'base_channels must be a positive int, '
                             f'got {base_channels!r}')
        stages = self.arch_settings[arch]
        n = len(stages)
        strides = check_per_stage('strides', strides or (1, ) + (2, ) *
                                  (n - 1), n)
        dilations = check_per_stage('dilations', dilations or (1, ) * n, n)
        if any(s not in (1, 2) for s in strides):
            raise ValueError(f'QVGG strides must be 1 or 2, got {strides}')
        self.out_indices = check_indices(
            (n - 1, ) if out_indices is None else out_indices, n)
        self.norm_eval = norm_eval

        self.stage_names, self.out_channels = [], []
        in_ch = in_channels
        for i, (widths, s, d) in enumerate(zip(stages, strides, dilations)):
            layers = []
            if s == 2 and downsample == 'avgpool':
                layers.append(nn.AvgPool2d(2, 2))
            for j, w in enumerate(widths):
                out_ch = max(1, w * base_channels // 64)
                stride = 2 if (s == 2 and j == 0 and
                               downsample == 'conv') else 1
                layers.append(conv_bn_act(in_ch, out_ch, 3, stride, d,
                                          norm_cfg, act_cfg))
                in_ch = out_ch
            self.add_module(f'stage{i + 1}', nn.Sequential(*layers))
            self.stage_names.append(f'stage{i + 1}')
            if i in self.out_indices:
                self.out_channels.append(in_ch)
