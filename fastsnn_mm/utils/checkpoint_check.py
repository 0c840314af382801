"""Does a checkpoint fit the model it is about to be loaded into?

mmengine loads checkpoints with ``strict=False``: keys of another
architecture are skipped with a warning and the run goes on with random
weights, and a full-precision checkpoint tested as a QANN or SNN runs with
untrained clips. The tools check first and say what to do instead.
"""
import re

from mmengine.logging import print_log

from ..errors import CheckpointError
from .safe_checkpoint import load_checkpoint_file

#: state-dict suffixes of the activation clip (QuantReLU.alpha, which an
#: IF neuron stores as its threshold theta): the two load into each other
CLIP_KEYS = ('.alpha', '.theta')
#: keys whose absence changes nothing (BN's batch counter)
IGNORED = ('num_batches_tracked', )
#: an SNN checkpoint keeps the fake-quantized weights baked into plain
#: layers, so it has no weight quantizers: a QANN loads it without them
WEIGHT_QUANTIZER = 'weight_quantizer.'
SHOWN = 6


def read_state_dict(path: str):
    """(state_dict, meta) of a checkpoint file, 'module.' prefixes removed
    as mmengine's loader does."""
    ckpt = load_checkpoint_file(path, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f'{path} is not a checkpoint: it holds a {type(ckpt).__name__}, '
            'not a dict of tensors; save one with mmengine or '
            'torch.save(model.state_dict(), path)')
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict) or not state or not all(
            hasattr(v, 'shape') for v in state.values()):
        raise CheckpointError(
            f'{path} is not a checkpoint: no state dict of tensors in it; '
            'save one with mmengine or torch.save(model.state_dict(), path)')
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    return state, meta


def _clip_base(key: str):
    if WEIGHT_QUANTIZER in key:
        return None
    for suffix in CLIP_KEYS:
        if key.endswith(suffix):
            return key[:-len(suffix)]
    return None


def _listed(keys) -> str:
    keys = sorted(keys)
    more = f' and {len(keys) - SHOWN} more' if len(keys) > SHOWN else ''
    return ', '.join(keys[:SHOWN]) + more


def compare(model, state: dict) -> dict:
    """Keys of ``model`` missing from ``state``, keys of ``state`` the model
    lacks, and keys with another shape. A clip saved as ``alpha`` fits a
    model that calls it ``theta`` and the other way round; a clip shared
    by several call sites fits a model with one per site (it loads so)."""
    from ..quantization.call_sites import expand_shared_form
    own = {k: v for k, v in model.state_dict().items()
           if not k.endswith(IGNORED)}
    theirs = {k: v for k, v in state.items() if not k.endswith(IGNORED)}
    expand_shared_form(model, theirs)
    if any(k.endswith('.theta') for k in theirs):
        own = {k: v for k, v in own.items() if WEIGHT_QUANTIZER not in k}
    clip_own = {_clip_base(k): k for k in own if _clip_base(k) is not None}
    clip_theirs = {_clip_base(k): k for k in theirs
                   if _clip_base(k) is not None}
    missing, unexpected, shapes = [], [], []
    for k, v in own.items():
        base = _clip_base(k)
        other = clip_theirs.get(base) if base is not None else k
        if other not in theirs:
            missing.append(k)
        elif tuple(theirs[other].shape) != tuple(v.shape) and base is None:
            shapes.append(f'{k} {tuple(theirs[other].shape)} in the file, '
                          f'{tuple(v.shape)} in the model')
    for k in theirs:
        base = _clip_base(k)
        if (base is not None and base not in clip_own) or \
                (base is None and k not in own):
            unexpected.append(k)
    clips = [k for k in own if _clip_base(k) is not None]
    return dict(missing=missing, unexpected=unexpected, shapes=shapes,
                full_precision=bool(clips) and not clip_theirs,
                matched=len(own) - len(missing))


def trained_bits(meta: dict):
    """Activation bits the checkpoint was trained at, from the config text
    mmengine saves in its meta (None when it cannot tell)."""
    text = meta.get('cfg')
    if not isinstance(text, str):
        return None
    try:
        from mmengine.config import Config
        quant = Config.fromstring(text, '.py').get('model', {}).get('quant')
        bits = quant.get('bits') if quant else None
        return bits if isinstance(bits, int) else None
    except Exception:  # a config text from elsewhere: the bits are unknown
        return None


def model_bits(model):
    from ..quantization import QuantReLU
    bits = {m.bits for m in model.modules() if isinstance(m, QuantReLU)}
    return max(bits) if bits else None


def check_checkpoint_fits(model, path: str, purpose: str = 'test') -> dict:
    """Raise :class:`CheckpointError` when ``path`` cannot serve ``purpose``.

    ``'test'``: every key must fit (missing, unexpected and re-shaped keys
    are listed), and a full-precision checkpoint is refused with what to do
    instead. ``'load_from'`` (start of a training run): a checkpoint none of
    whose keys fit is refused; a partial fit is logged with its key lists
    (a new head, say), a full-precision start is logged with the hook that
    calibrates its clips, and another bit width is logged as the next step
    of progressive QAT.
    """
    state, meta = read_state_dict(path)
    found = compare(model, state)
    bits_now, bits_then = model_bits(model), trained_bits(meta)
    problems = []
    if found['missing']:
        problems.append(f'{len(found["missing"])} missing key(s): '
                        f'{_listed(found["missing"])}')
    if found['unexpected']:
        problems.append(f'{len(found["unexpected"])} unexpected key(s): '
                        f'{_listed(found["unexpected"])}')
    if found['shapes']:
        problems.append(f'{len(found["shapes"])} key(s) of another shape: '
                        f'{_listed(found["shapes"])}')
    if purpose == 'test':
        if found['full_precision'] and found['matched']:
            raise CheckpointError(
                f'{path} is a full-precision checkpoint (no QuantReLU clip '
                '`alpha` in it): a QANN or SNN tested from it runs with '
                'untrained clips. Train QAT from it first (tools/train.py '
                f'CONFIG --cfg-options load_from={path}, with '
                "custom_hooks=[dict(type='QuantAlphaCalibrationHook')] to "
                'start the clips from activation statistics), then test that '
                "run's checkpoint")
        if problems:
            raise CheckpointError(
                f'{path} does not fit {type(model).__name__}: '
                + '; '.join(problems) + '. It was saved from another '
                'architecture or config: test it with the config it was '
                'trained with')
    else:
        if not found['matched']:
            raise CheckpointError(
                f'load_from {path}: none of its {len(state)} keys fit '
                f'{type(model).__name__} ({_listed(state)}); it was saved '
                'from another architecture: pick a checkpoint of this model')
        if found['full_precision']:
            print_log(
                f'load_from {path}: full-precision checkpoint; the QuantReLU '
                "clips start untrained (add custom_hooks=[dict(type="
                "'QuantAlphaCalibrationHook')] to set them from activation "
                'statistics)', logger='current')
            problems = [p for p in problems if 'missing' not in p or
                        any(_clip_base(k) is None for k in found['missing'])]
        if problems:
            print_log(f'load_from {path} fits only in part: '
                      + '; '.join(problems), logger='current', level=30)
        if bits_then and bits_now and bits_then != bits_now:
            print_log(
                f'load_from {path}: trained at {bits_then} bits, this model '
                f'has {bits_now}: weights and clips carry over and training '
                f'goes on at {bits_now} bits (progressive QAT)',
                logger='current')
    if purpose == 'test' and bits_then and bits_now and bits_then != bits_now:
        print_log(f'{path} was trained at {bits_then} bits and is tested '
                  f'as a {bits_now}-bit model (bits come from the config)',
                  logger='current', level=30)
    # an SNN checkpoint (conversion hook, fine-tuning loop) says so in meta,
    # with the settings it ran with (None for a QANN checkpoint)
    return dict(found, bits_now=bits_now, bits_then=bits_then,
                snn=meta.get('snn') or None)
