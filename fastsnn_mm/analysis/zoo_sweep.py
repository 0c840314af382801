"""The installed mm model zoo as Fast-SNNs: which stock configs build,
which are refused before QAT (and why), which convert, and whether their
SNN checks equal to their QANN.

Each stock config is turned into a Fast-SNN the README way: the model type
becomes our wrapper and ``quant=dict(bits=3, make_convertible=True)`` is
added (``custom_imports`` is this process's import of fastsnn_mm). Nothing
is trained or downloaded: random weights, BN statistics and clips settled
on random images (:func:`~.conversion_check.settle_untrained`), then
:func:`~.conversion_check.convert_and_check`. Configs that describe the
same model (most differ in schedule or data only) are checked once.
"""
import glob
import hashlib
import json
import os
import os.path as osp
import signal
import time
import traceback

import torch

from ..errors import UnconvertibleModelError
from .conversion_check import (
    NonFiniteQANNError,
    convert_and_check,
    settle_untrained,
)

#: package -> (model types our wrapper stands in for, the wrapper, the side
#: of the random images)
PACKAGES = {
    'mmpretrain': (('ImageClassifier', ), 'FastSNNImageClassifier', 32),
    'mmdet': (None, 'FastSNNSingleStageDetector', 64),
    'mmseg': (('EncoderDecoder', ), 'FastSNNEncoderDecoder', 64),
}
#: what a single-stage detector may override and still run on our wrapper
_DET_OVERRIDES = {'loss', 'predict', '_forward', 'extract_feat', 'forward'}
#: outcomes, in the order a config gets through them
OUTCOMES = ('not covered', 'config error', 'build failed',
            'refused before QAT', 'run failed', 'refused by converter',
            'conversion failed', 'checked equal', 'wrong')


def zoo_configs(package):
    """Every model config the installed ``package`` ships (no _base_)."""
    import importlib
    root = osp.join(osp.dirname(importlib.import_module(package).__file__),
                    '.mim', 'configs')
    paths = glob.glob(osp.join(root, '**', '*.py'), recursive=True)
    return sorted(p for p in paths if '_base_' not in p.split(os.sep))


def _covered(package, model_type):
    """Whether our wrapper for ``package`` runs ``model_type`` unchanged."""
    types, _, _ = PACKAGES[package]
    if types is not None:
        return model_type in types
    from mmdet.models.detectors import SingleStageDetector
    from mmdet.registry import MODELS
    cls = MODELS.get(model_type) if isinstance(model_type, str) else None
    if cls is None or not issubclass(cls, SingleStageDetector):
        return False
    own = set()
    for klass in cls.__mro__:
        if klass is SingleStageDetector:
            break
        own |= set(vars(klass))
    return not own & _DET_OVERRIDES


def _strip_pretrained(node):
    """No checkpoint downloads: every ``init_cfg`` / ``pretrained`` off."""
    if isinstance(node, dict):
        for key in list(node):
            if key in ('init_cfg', 'pretrained'):
                node[key] = None
            else:
                _strip_pretrained(node[key])
    elif isinstance(node, (list, tuple)):
        for item in node:
            _strip_pretrained(item)


#: model-dict keys that do not change what the spiking path is made of:
#: the data's size and classes, losses, train / test settings
_SAME_MODEL_KEYS = ('data_preprocessor', 'train_cfg', 'test_cfg',
                    'num_classes', 'loss_cls', 'loss_bbox', 'loss_decode',
                    'loss', 'loss_centerness', 'loss_obj', 'loss_conf',
                    'loss_xy', 'loss_wh', 'sampler', 'assigner', 'cal_acc')


def _architecture(node):
    if isinstance(node, dict):
        return {k: _architecture(v) for k, v in node.items()
                if k not in _SAME_MODEL_KEYS}
    if isinstance(node, (list, tuple)):
        return [_architecture(v) for v in node]
    return node


def model_key(model_cfg) -> str:
    """Configs whose model dicts differ only in data size, classes, losses
    and train / test settings describe the same spiking path: checked
    once."""
    text = json.dumps(_architecture(model_cfg), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def fast_snn_model_cfg(package, cfg):
    """``cfg.model`` as a Fast-SNN (the README's lines), or None when the
    model type is not one our wrappers cover."""
    model = cfg.get('model')
    if not isinstance(model, dict) or not _covered(package,
                                                   model.get('type')):
        return None
    model = model.to_dict() if hasattr(model, 'to_dict') else dict(model)
    _strip_pretrained(model)
    model['type'] = PACKAGES[package][1]
    model['quant'] = dict(bits=3, make_convertible=True)
    return model


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


#: the time limit counts this process's CPU seconds (user + system), not
#: the wall clock, so a check that waits for a busy CPU is not cut short
#: and its outcome does not depend on what else the machine runs
_CLOCK, _SIGNAL = signal.ITIMER_PROF, signal.SIGPROF


def _first_line(err):
    text = ' '.join(str(err).split())
    return f'{type(err).__name__}: {text}'[:200]


def refusal_kinds(err) -> str:
    """The refused module types of an unconvertible model, e.g.
    'Sigmoid, MaxPool2d'."""
    kinds = []
    for line in str(err).splitlines():
        if line.startswith('  ') and ':' in line:
            kind = line.split(':', 1)[1].strip().split(' ')[0]
            if kind and kind not in kinds:
                kinds.append(kind)
    return ', '.join(kinds) or _first_line(err)


def check_model_cfg(package, model_cfg, seed=0, timeout=300):
    """Build, settle, convert and check one Fast-SNN model dict; a record
    with ``outcome`` (one of :data:`OUTCOMES`), ``detail`` and seconds.
    ``timeout``: CPU seconds of this process before the check counts as
    failed at the step it reached."""
    from mmengine.registry import MODELS, init_default_scope
    start = time.time()
    record = dict(outcome=None, detail='')
    old = signal.signal(_SIGNAL, _alarm)
    signal.setitimer(_CLOCK, timeout)
    step = 'build failed'
    try:
        init_default_scope(package)
        torch.manual_seed(seed)
        model = MODELS.build(model_cfg).eval()
        step = 'run failed'
        side = PACKAGES[package][2]
        g = torch.Generator().manual_seed(seed)
        x = [torch.randn(2, 3, side, side, generator=g)]
        settle_untrained(model, x, passes=1)
        step = 'conversion failed'
        result = convert_and_check(model, x)
        record['outcome'] = 'checked equal' if result['ok'] else 'wrong'
        kinds = {}
        for r in result['layers']:
            kinds[r['verdict']] = kinds.get(r['verdict'], 0) + 1
        record['detail'] = ', '.join(f'{n} {v}' for v, n in kinds.items())
        record['wrong_layers'] = [
            dict(layer=r['layer'], reasons=r['reasons'])
            for r in result['layers'] if r['verdict'] == 'wrong'][:5]
        record['outputs_rel_error'] = [round(o['rel_error'], 4)
                                       for o in result['outputs']]
    except NonFiniteQANNError as err:  # the random net overflowed
        record['outcome'] = 'run failed'
        record['detail'] = _first_line(err)
    except UnconvertibleModelError as err:
        record['outcome'] = ('refused before QAT' if step == 'build failed'
                             else 'refused by converter')
        record['detail'] = refusal_kinds(err)
    except _Timeout:
        record['outcome'] = step
        record['detail'] = f'over {timeout} CPU s'
    except Exception as err:  # a stock model we cannot run: recorded
        record['outcome'] = step
        record['detail'] = _first_line(err)
        record['where'] = traceback.extract_tb(err.__traceback__)[-1].name
    finally:
        signal.setitimer(_CLOCK, 0)
        signal.signal(_SIGNAL, old)
    record['seconds'] = round(time.time() - start, 2)
    return record


def summarize(records):
    """Counts per package and outcome, and per package and refusal /
    failure detail (configs, not unique models)."""
    counts, reasons = {}, {}
    for r in records:
        pkg = counts.setdefault(r['package'], dict.fromkeys(OUTCOMES, 0))
        pkg[r['outcome']] += 1
        if r['outcome'] not in ('not covered', 'checked equal'):
            key = (r['package'], r['outcome'], r['detail'][:90])
            reasons[key] = reasons.get(key, 0) + 1
    return counts, reasons
