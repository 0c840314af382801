"""A shallow Tiny-YOLOv3-style neck: few spiking layers in series.

An SNN at T = 2^b - 1 steps drifts from its QANN a little at every neuron
layer (a neuron fires at most once per step, so input that arrives late
in the window cannot all be passed on), and the drift adds up with depth.
mmdet's YOLOV3Neck puts five convs per scale in series (17 neuron layers
between the backbone and the stride-8 output); this neck puts one conv on
the deepest map and two per further scale (5 to stride 8), with the same
nearest-upsample + concat pattern and the same in/out conventions.
"""
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import nn

from ...registry import MODELS


@MODELS.register_module()
class TinyYOLONeck(BaseModule):
    """Deepest map: 1x1 conv. Each shallower map: 1x1 conv halving the
    previous output, nearest x2 upsampling, concat, one 3x3 conv.

    Args:
        in_channels: backbone channels, deepest first (as YOLOV3Neck).
        out_channels: output channels per scale, deepest first.
        conv_cfg, norm_cfg, act_cfg: of every ConvModule.
    """

    def __init__(self, in_channels, out_channels, conv_cfg=None,
                 norm_cfg=dict(type='BN', requires_grad=True),
                 act_cfg=dict(type='QuantReLU', bits=3), init_cfg=None):
        super().__init__(init_cfg)
        in_channels, out_channels = list(in_channels), list(out_channels)
        if not in_channels or len(in_channels) != len(out_channels):
            raise ValueError(f'in_channels {in_channels} and out_channels '
                             f'{out_channels} need one entry per scale')
        self.in_channels, self.out_channels = in_channels, out_channels
        cfg = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.lateral = ConvModule(in_channels[0], out_channels[0], 1, **cfg)
        self.reduces, self.fuses = nn.ModuleList(), nn.ModuleList()
        for i in range(1, len(in_channels)):
            half = max(1, out_channels[i - 1] // 2)
            self.reduces.append(ConvModule(out_channels[i - 1], half, 1,
                                           **cfg))
            self.fuses.append(ConvModule(half + in_channels[i],
                                         out_channels[i], 3, padding=1,
                                         **cfg))

    def forward(self, feats):
        if len(feats) != len(self.in_channels):
            raise ValueError(f'expected {len(self.in_channels)} feature '
                             f'maps, got {len(feats)}')
        out = self.lateral(feats[-1])
        outs = [out]
        for reduce, fuse, x in zip(self.reduces, self.fuses,
                                   reversed(feats[:-1])):
            up = F.interpolate(reduce(out), size=x.shape[-2:], mode='nearest')
            out = fuse(torch.cat((up, x), 1))
            outs.append(out)
        return tuple(outs)
