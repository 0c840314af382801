"""VGG that converts to an SNN as it is: BN after every conv, one activation
module per conv, and downsampling by stride-2 conv or average pooling
(average pooling of spikes is linear; max-pooling is not)."""
from torch import nn

from ...registry import MODELS
from ._layers import (
    DEFAULT_INIT,
    StagedBackbone,
    check_indices,
    check_per_stage,
    conv_bn_act,
)
from ._pretrained import conv_bn_into, layers_in_order


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
        init_cfg: as mm backbones; ``dict(type='Pretrained',
            checkpoint='torchvision://vgg16_bn')`` (or ``vgg11``,
            ``vgg11_bn``, a local file, or an mmpretrain VGG classifier
            checkpoint) maps the ImageNet convs in order onto ours; 'vgg9'
            takes the first seven convs of a VGG-16. Weights fit
            ``base_channels=64``. Checkpoint conv biases are folded into
            our BNs (see ``conv_bn_into``), so eval outputs match.
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
        super().__init__(base_channels, init_cfg=init_cfg)
        if arch not in self.arch_settings:
            raise ValueError(f'QVGG arch must be one of '
                             f'{sorted(self.arch_settings)}, got {arch!r}')
        if downsample not in ('avgpool', 'conv'):
            raise ValueError(f"downsample must be 'avgpool' or 'conv', "
                             f'got {downsample!r}')
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

    def map_pretrained(self, state_dict):
        """torchvision ``features.N`` (plain or _bn) and mmpretrain
        ``features.N.conv`` / ``.bn`` layouts -> ours, conv by conv."""
        theirs = layers_in_order(state_dict)
        if 'stage1.0.0.weight' in state_dict or not theirs or \
                not any(k.startswith('features.') for k in state_dict):
            return super().map_pretrained(state_dict)
        mine = self.conv_bn_pairs_in_order()
        widths = [state_dict[f'{c}.weight'].shape[0] for c, _ in theirs]
        need = [self.get_submodule(c).out_channels for c, _ in mine]
        if widths[:len(need)] != need:
            raise ValueError(
                f'the checkpoint is a VGG with conv widths {widths}; this '
                f'QVGG needs {need} first (arch and base_channels=64 must '
                'match: vgg11 <- vgg11[_bn], vgg16 / vgg9 <- vgg16[_bn])')
        mapped, used = {}, []
        for (conv, bn), (our_conv, our_bn) in zip(theirs, mine):
            used += conv_bn_into(state_dict, conv, bn, our_conv, our_bn,
                                 mapped, eps=self.get_submodule(our_bn).eps)
        with_bn = all(bn is not None for _, bn in theirs)
        layout = 'VGG with BN' if with_bn else 'VGG without BN'
        notes = []
        if len(theirs) > len(mine):
            notes.append(f'{type(self).__name__} has {len(mine)} convs: the '
                         f'checkpoint\'s last {len(theirs) - len(mine)} are '
                         'not used')
        if not with_bn:
            notes.append('the checkpoint has no BN: our BNs start as the '
                         'identity plus the conv bias')
        return mapped, used, layout + ' (torchvision / mmpretrain)', notes
