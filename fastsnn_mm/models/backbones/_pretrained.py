"""ImageNet starts for the convertible backbones.

Stock mm configs start a backbone from ImageNet with
``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet34')``.
Our backbones name their layers differently from torchvision and mmpretrain
(``stem.0.0`` where ResNet has ``conv1``, ``stage2.1.0`` where VGG has
``features.3``), so mmengine's plain loader would leave those tensors at
their random init and say so only in a long key list. Here each backbone
maps the classification layouts it has a counterpart for (``map_pretrained``)
and :func:`load_pretrained` loads the mapped tensors, then logs one warning
listing every backbone tensor the checkpoint did not fill and every
checkpoint tensor that was not used.

Checkpoints are read by mmengine's ``CheckpointLoader``: ``torchvision://``,
``open-mmlab://``, URLs and local files (local files go through the safe
loader that ``fastsnn_mm`` installs).
"""
import logging
from collections import OrderedDict

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

#: ImageNet checkpoints hold these next to the backbone; never backbone
#: tensors, so they are reported as "classifier" rather than as a mismatch
CLASSIFIER_PREFIXES = ('fc.', 'classifier.', 'head.', 'neck.',
                       'data_preprocessor.')


def state_dict_of(checkpoint) -> 'OrderedDict[str, torch.Tensor]':
    """The tensors of a loaded checkpoint, whatever wraps them (mm's
    ``state_dict``, some repositories' ``model``, or a bare state dict);
    a ``module.`` prefix from DataParallel is dropped."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f'a checkpoint must be a dict of tensors, got '
                        f'{type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    out = OrderedDict()
    for k, v in checkpoint.items():
        if isinstance(v, torch.Tensor):
            out[k[len('module.'):] if k.startswith('module.') else k] = v
    return out


def select_prefix(state_dict, prefix=None):
    """Keys under ``prefix`` with it removed. Without a prefix, a whole
    classifier checkpoint (mmpretrain: ``backbone.*`` and ``head.*``) gives
    its ``backbone.`` part; a bare backbone or torchvision file is kept."""
    if prefix is None:
        if not any(k.startswith('backbone.') for k in state_dict):
            return state_dict, None
        prefix = 'backbone.'
    if not prefix.endswith('.'):
        prefix += '.'
    picked = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                         if k.startswith(prefix))
    if not picked:
        raise ValueError(f'the checkpoint has no key starting with '
                         f'{prefix!r}; its keys start with '
                         f'{sorted({k.split(".")[0] for k in state_dict})}')
    return picked, prefix


def layers_in_order(state_dict, skip=CLASSIFIER_PREFIXES):
    """Conv / BN layers of a sequential layout, in the file's order.

    Returns ``[(conv_path, bn_path or None), ...]``: a module with a 4-D
    ``weight`` is a conv; one with a ``running_mean`` is the BN after the
    conv before it. Works for torchvision's ``features.N`` and mmpretrain's
    ``features.N.conv`` / ``features.N.bn`` alike.
    """
    pairs = []
    for key, value in state_dict.items():
        if key.startswith(skip):
            continue
        path, _, name = key.rpartition('.')
        if name == 'weight' and value.dim() == 4:
            pairs.append([path, None])
        elif name == 'running_mean' and pairs and pairs[-1][1] is None:
            pairs[-1][1] = path
    return [tuple(p) for p in pairs]


def conv_bn_into(sd, conv, bn, our_conv, our_bn, out, eps=1e-5):
    """Copy one foreign conv (+ optional BN) into our bias-free conv + BN;
    returns the checkpoint keys used.

    Our convs have no bias: a checkpoint conv bias b is folded into the BN
    so that eval-mode outputs are unchanged. With a BN after the conv its
    running mean becomes mean - b; without one (plain VGG) our BN becomes
    the identity plus b (weight 1, running mean 0, running variance
    1 - ``eps``, so that sqrt(var + eps) is exactly 1).
    """
    used = [f'{conv}.weight']
    out[f'{our_conv}.weight'] = sd[f'{conv}.weight']
    bias = sd.get(f'{conv}.bias')
    if bias is not None:
        used.append(f'{conv}.bias')
    if bn is not None:
        for name in ('weight', 'bias', 'running_mean', 'running_var',
                     'num_batches_tracked'):
            if f'{bn}.{name}' in sd:
                out[f'{our_bn}.{name}'] = sd[f'{bn}.{name}']
                used.append(f'{bn}.{name}')
        if bias is not None and f'{our_bn}.running_mean' in out:
            out[f'{our_bn}.running_mean'] = \
                out[f'{our_bn}.running_mean'] - bias
    elif bias is not None:
        out[f'{our_bn}.weight'] = torch.ones_like(bias)
        out[f'{our_bn}.bias'] = bias.clone()
        out[f'{our_bn}.running_mean'] = torch.zeros_like(bias)
        out[f'{our_bn}.running_var'] = torch.full_like(bias, 1.0 - eps)
    return used


def _short(keys, limit=12):
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys)} in all)' if len(keys) > limit
                    else '')


def _is_clip(key):
    return key.endswith('.alpha')


def load_pretrained(backbone, init_cfg):
    """Load ``init_cfg['checkpoint']`` into ``backbone`` through its
    ``map_pretrained`` and log what did not match.

    Raises:
        ValueError: nothing in the checkpoint fits the backbone (another
            architecture, or a width the checkpoint does not have).
    """
    filename = init_cfg['checkpoint']
    checkpoint = CheckpointLoader.load_checkpoint(
        filename, map_location=init_cfg.get('map_location', 'cpu'),
        logger='current')
    sd, prefix = select_prefix(state_dict_of(checkpoint),
                               init_cfg.get('prefix'))
    name = type(backbone).__name__
    ours = backbone.state_dict()
    mapped, used, layout, notes = backbone.map_pretrained(sd)

    shape_bad = {k: (tuple(v.shape), tuple(ours[k].shape))
                 for k, v in mapped.items()
                 if k in ours and v.shape != ours[k].shape}
    fits = {k: v for k, v in mapped.items()
            if k in ours and k not in shape_bad}
    # a BN's batch counter fits any BN: keep it only with its BN's weights
    fits = {k: v for k, v in fits.items()
            if not k.endswith('.num_batches_tracked') or
            k[:-len('num_batches_tracked')] + 'running_mean' in fits}
    bad_text = [f'{k} {a} vs ours {b}' for k, (a, b) in shape_bad.items()]
    if not fits:
        why = (f'{len(shape_bad)} shape mismatches, e.g. '
               f'{_short(bad_text, 3)}' if shape_bad else
               f'its keys ({_short(sd, 3)}) name none of ours '
               f'({_short(ours, 3)})')
        raise ValueError(
            f'{name}: no tensor of {filename} fits this backbone ({layout} '
            f'layout; {why}). ImageNet ResNet and VGG weights fit '
            'base_channels=64, in_channels=3 and the same depth / arch.')
    for key, value in fits.items():
        fits[key] = value.to(ours[key].dtype)
    backbone.load_state_dict(fits, strict=False)
    derived, how = backbone.after_pretrained(fits)
    if how:
        notes = notes + [how]

    # BN batch counters are bookkeeping, not weights
    missing = [k for k in ours if k not in fits and k not in derived and
               k not in shape_bad and not k.endswith('num_batches_tracked')]
    clips = [k for k in missing if _is_clip(k)]
    missing = [k for k in missing if not _is_clip(k)]
    unused = [k for k in sd if k not in used]
    classifier = [k for k in unused if k.startswith(CLASSIFIER_PREFIXES)]
    unused = [k for k in unused if k not in classifier]
    source = filename + (f' (keys under {prefix!r})' if prefix else '')
    lines = [f'{name}: loaded {len(fits)} of {len(ours)} tensors from '
             f'{source}, {layout} layout.']
    lines += notes
    if shape_bad:
        lines.append('shape mismatch, kept from init: ' + _short(bad_text))
    if missing:
        lines.append('not in the checkpoint, kept from init: ' +
                     _short(missing))
    if unused:
        lines.append('in the checkpoint but not used: ' + _short(unused))
    if classifier:
        lines.append(f'classifier tensors not used ({len(classifier)}): ' +
                     _short(classifier, 4))
    if clips:
        lines.append(f'{len(clips)} QuantReLU clips (alpha) are not ImageNet '
                     'tensors: they keep their init until '
                     'QuantAlphaCalibrationHook or training sets them.')
    level = logging.WARNING if (shape_bad or missing or unused) \
        else logging.INFO
    print_log('\n  '.join(lines), logger='current', level=level)
    return dict(loaded=sorted(fits), missing=missing, unused=unused,
                shape_mismatch=sorted(shape_bad), clips=clips,
                classifier=classifier, layout=layout)
