"""Layer builders shared by the convertible backbones.

They work without mmcv's registrations: 'ReLU' and 'BN'/'SyncBN' map to
torch directly, anything else is built from mmengine's root MODELS (where
QuantReLU and, once mmcv is imported, mmcv's layers live).
"""
from mmengine.model import BaseModule
from torch import nn

from ...errors import check_int
from ...registry import MODELS
from ._pretrained import load_pretrained

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


def split_pretrained(init_cfg):
    """(the last ``Pretrained`` entry or None, the other entries)."""
    cfgs = [] if init_cfg is None else \
        [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg)
    pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
    others = [c for c in cfgs if c.get('type') != 'Pretrained']
    return (pretrained[-1] if pretrained else None), others


class StagedBackbone(BaseModule):
    """What the convertible backbones share: an optional ``stem``, then the
    stages named in ``stage_names``; returns the outputs at ``out_indices``.
    With ``norm_eval`` the BN layers stay in eval mode while training.

    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=None)`` first
    initialises every tensor the default way (the clips and layers an
    ImageNet classifier has no counterpart for keep that), then loads the
    checkpoint through :meth:`map_pretrained` (see ``_pretrained.py``).

    ``base_channels`` (the width every stage's width derives from) is
    checked here, once for every subclass.
    """

    def __init__(self, base_channels: int, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.base_channels = check_int(
            'base_channels', base_channels, 1,
            hint='the width every stage derives from')

    def init_weights(self):
        pretrained, others = split_pretrained(self.init_cfg)
        if pretrained is None:
            super().init_weights()
            self.after_default_init()
            return
        own = self.init_cfg
        self.init_cfg = others or DEFAULT_INIT
        try:
            super().init_weights()
        finally:
            self.init_cfg = own
        self.after_default_init()
        self.pretrained_report = load_pretrained(self, pretrained)

    def after_default_init(self):
        """Extra default init (e.g. zero-init of residual BNs)."""

    def after_pretrained(self, loaded):
        """Set what has no counterpart in the checkpoint from what does.

        ``loaded`` holds the tensors loaded, by our key. Returns the keys
        set here and one line for the log saying how (or ``[], None``).
        """
        return [], None

    def conv_bn_pairs_in_order(self):
        """[(conv path, BN path)] of every conv_bn_act, forward order."""
        pairs = []
        for name, m in self.named_modules():
            if isinstance(m, nn.Sequential) and len(m) >= 2 and \
                    isinstance(m[0], nn.Conv2d) and \
                    isinstance(m[1], nn.modules.batchnorm._BatchNorm):
                pairs.append((f'{name}.0', f'{name}.1'))
        return pairs

    def map_pretrained(self, state_dict):
        """Our keys for a checkpoint's tensors.

        Returns ``(mapped, used, layout, notes)``: {our key: tensor}, the
        checkpoint keys consumed, the layout's name, and lines for the log.
        This default takes a checkpoint of the backbone's own layout (e.g.
        one of our classifiers); subclasses add foreign layouts.
        """
        ours = self.state_dict()
        mapped = {k: v for k, v in state_dict.items() if k in ours}
        return mapped, list(mapped), type(self).__name__, []

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
