"""Layer builders shared by the convertible backbones.

They work without mmcv's registrations: 'ReLU' and 'BN'/'SyncBN' map to
torch directly, anything else is built from mmengine's root MODELS (where
QuantReLU and, once mmcv is imported, mmcv's layers live).
"""
from mmengine.model import BaseModule
from torch import nn

from ...registry import MODELS

_NORMS = {'BN': nn.BatchNorm2d, 'BN2d': nn.BatchNorm2d,
          'SyncBN': nn.SyncBatchNorm}


def build_act(cfg) -> nn.Module:
    """A new activation module per call (never shared between places)."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'act_cfg must be a dict with a "type", got {cfg!r}')
    cfg = dict(cfg)
    if cfg['type'] == 'ReLU':
        cfg.pop('type')
        return nn.ReLU(**cfg)
    if cfg['type'] == 'QuantReLU':
        # each call site's input is a temporary no one else reads
        cfg.setdefault('inplace', True)
    return MODELS.build(cfg)


def build_norm(cfg, channels: int) -> nn.Module:
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'norm_cfg must be a dict with a "type", got {cfg!r}')
    cfg = dict(cfg)
    kind = cfg.pop('type')
    requires_grad = cfg.pop('requires_grad', True)
    if kind in _NORMS:
        norm = _NORMS[kind](channels, **cfg)
    elif kind == 'GN':
        norm = nn.GroupNorm(num_channels=channels, **cfg)
    else:
        norm = MODELS.build(dict(type=kind, num_features=channels, **cfg))
    for p in norm.parameters():
        p.requires_grad = requires_grad
    return norm


def conv_bn_act(in_ch, out_ch, kernel, stride, dilation, norm_cfg, act_cfg):
    """conv (no bias) -> norm -> activation, as an nn.Sequential."""
    pad = dilation * (kernel - 1) // 2
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride, pad, dilation,
                        bias=False), build_norm(norm_cfg, out_ch)]
    if act_cfg is not None:
        layers.append(build_act(act_cfg))
    return nn.Sequential(*layers)


def check_indices(out_indices, num_stages):
    out_indices = tuple(out_indices)
    if not out_indices or any(not 0 <= i < num_stages for i in out_indices):
        raise ValueError(f'out_indices must be in 0..{num_stages - 1}, '
                         f'got {out_indices}')
    return out_indices


def check_per_stage(name, values, num_stages):
    values = tuple(values)
    if len(values) != num_stages:
        raise ValueError(f'{name} needs one value per stage ({num_stages}), '
                         f'got {values}')
    return values


DEFAULT_INIT = [
    dict(type='Kaiming', layer='Conv2d'),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
]


class StagedBackbone(BaseModule):
    """What the convertible backbones share: an optional ``stem``, then the
    stages named in ``stage_names``; returns the outputs at ``out_indices``.
    With ``norm_eval`` the BN layers stay in eval mode while training."""

    def forward(self, x):
        stem = getattr(self, 'stem', None)
        if stem is not None:
            x = stem(x)
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode=True):
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
