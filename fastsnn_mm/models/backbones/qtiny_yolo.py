"""Tiny-YOLO-style backbone that converts to an SNN as it is.

Tiny-YOLO alternates 3x3 conv-BN-LeakyReLU with 2x2 max-pooling. Neither
the leaky slope nor max-pooling has an exact spiking equivalent, so here
every max-pool is a stride-2 3x3 conv-BN-act and every activation is its
own QuantReLU module (one module per place, so each becomes one neuron
layer).
"""
from torch import nn

from ...registry import MODELS
from ._layers import (
    DEFAULT_INIT,
    StagedBackbone,
    check_indices,
    check_per_stage,
    conv_bn_act,
)


@MODELS.register_module()
class QTinyYOLO(StagedBackbone):
    """A stem conv, then stages that each halve the resolution.

    Stage i starts with a 3x3 conv of stride ``strides[i]`` (where
    Tiny-YOLO max-pools) to ``width * 2**(i + 1)`` channels, then runs
    ``stage_blocks[i]`` stride-1 3x3 convs. The defaults follow Tiny-YOLO
    (full-resolution stem, five stride-2 stages: strides 2..32); a stride-2
    stem with four stages gives the same output strides at a fraction of
    the cost on small inputs.

    Args:
        base_channels: stem width before ``widen_factor`` (16 in Tiny-YOLO).
        widen_factor: multiplies every width (0.5 halves each).
        stem_stride: 1 or 2.
        strides: per stage, 1 or 2; their number is the number of stages.
        stage_blocks: extra 3x3 convs per stage (one value per stage).
        out_indices: stages returned, 0-based; with the defaults (2, 3, 4)
            gives the stride 8/16/32 maps a YOLOV3Neck expects (shallow
            first).
        in_channels: input channels.
        act_cfg: activation after every conv (QuantReLU 3-bit by default;
            ``dict(type='ReLU')`` for a full-precision net).
        norm_cfg: normalisation after each conv.
        norm_eval: keep norm layers in eval mode while training.
        init_cfg: as mm backbones. Tiny-YOLO's ImageNet weights exist only
            as Darknet binaries; neither torchvision nor mmpretrain has a
            Tiny-YOLO classifier, so ``Pretrained`` here takes checkpoints
            of this backbone's own layout (a QTinyYOLO trained by a
            fastsnn_mm config, ``prefix='backbone.'``).
    """

    def __init__(self, base_channels=16, widen_factor=1.0, stem_stride=1,
                 strides=(2, 2, 2, 2, 2), stage_blocks=(0, 1, 1, 1, 1),
                 out_indices=(2, 3, 4),
                 in_channels=3, act_cfg=dict(type='QuantReLU', bits=3),
                 norm_cfg=dict(type='BN'), norm_eval=False,
                 init_cfg=DEFAULT_INIT):
        super().__init__(base_channels, init_cfg=init_cfg)
        if not widen_factor > 0:
            raise ValueError(f'widen_factor must be positive, '
                             f'got {widen_factor!r}')
        if stem_stride not in (1, 2):
            raise ValueError(f'stem_stride must be 1 or 2, '
                             f'got {stem_stride!r}')
        strides = tuple(strides)
        if not strides or any(s not in (1, 2) for s in strides):
            raise ValueError(f'strides must be 1 or 2 per stage, '
                             f'got {strides}')
        self.num_stages = len(strides)
        stage_blocks = check_per_stage('stage_blocks', stage_blocks,
                                       self.num_stages)
        if any(not isinstance(n, int) or n < 0 for n in stage_blocks):
            raise ValueError(f'stage_blocks must be non-negative ints, '
                             f'got {stage_blocks}')
        self.out_indices = check_indices(out_indices, self.num_stages)
        self.norm_eval = norm_eval
        width = max(1, int(round(base_channels * widen_factor)))

        def conv(cin, cout, stride):
            return conv_bn_act(cin, cout, 3, stride, 1, norm_cfg, act_cfg)

        self.stem = conv(in_channels, width, stem_stride)
        cin, widths = width, []
        for i, (s, n) in enumerate(zip(strides, stage_blocks)):
            cout = width * 2 ** (i + 1)
            layers = [conv(cin, cout, s)]
            layers += [conv(cout, cout, 1) for _ in range(n)]
            self.add_module(f'stage{i + 1}', nn.Sequential(*layers))
            cin = cout
            widths.append(cout)
        self.out_channels = [widths[i] for i in self.out_indices]
        self.stage_names = [f'stage{i + 1}' for i in range(self.num_stages)]
