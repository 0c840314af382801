"""Set QuantReLU clips (alpha) from activation statistics.

A full-precision checkpoint loaded into a QANN brings no alphas; the
default clip can sit far from a layer's real range and cost many epochs.
Calibration runs a few batches with every QuantReLU acting as a plain ReLU
(so each layer sees the statistics the checkpoint was trained with), keeps a
random sample of each QuantReLU's positive inputs, and sets alpha from it.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..utils.modules import forward_hooks
from .quant_relu import QuantReLU

_METHODS = ('percentile', 'max', 'mse')


def _run_batch(model, batch):
    """Forward one batch the way the model expects it."""
    pre = getattr(model, 'data_preprocessor', None)
    if isinstance(batch, dict) and pre is not None:
        data = pre(batch, False)
        if isinstance(data, dict):
            return model(**data, mode='tensor')
        return model(*data, mode='tensor')
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, (list, tuple)):
        return model(*batch)
    return model(batch)


def _mse_alpha(x: torch.Tensor, levels: int, num: int = 100) -> torch.Tensor:
    """Clip minimising the quantization error of the sample ``x``."""
    top = x.max()
    cands = top * torch.linspace(1.0 / num, 1.0, num, device=x.device)
    best, best_err = top, None
    for a in cands:
        q = torch.floor(torch.clamp(x / a, 0, 1) * levels + 0.5) * (a / levels)
        err = (q - x).pow(2).mean()
        if best_err is None or err < best_err:
            best, best_err = a, err
    return best


def _alpha_from(x: torch.Tensor, method, percentile, levels):
    if method == 'max':
        return x.max()
    if method == 'mse':
        return _mse_alpha(x, levels)
    return torch.quantile(x, percentile / 100.0)


@torch.no_grad()
def calibrate_alpha(model: nn.Module, batches, method: str = 'percentile',
                    percentile: float = 99.9, num_samples: int = 100000,
                    skip=()) -> dict:
    """Set every QuantReLU's alpha from ``batches`` and return {name: alpha}.

    Args:
        model: holds QuantReLUs; an mm model gets dataloader batches (dicts)
            through ``data_preprocessor`` and ``mode='tensor'``; a plain
            module gets tensors.
        batches: an iterable of batches (e.g. a few from a dataloader).
        method: 'percentile' (of positive inputs), 'max' or 'mse' (clip with
            the least quantization error at the layer's bits).
        percentile: used by 'percentile', in (0, 100].
        num_samples: positive inputs kept per layer and batch (memory cap).
        skip: names of QuantReLUs to leave as they are.
    """
    if method not in _METHODS:
        raise ValueError(f'calibration method must be one of {_METHODS}, '
                         f'got {method!r}')
    if not 0 < percentile <= 100:
        raise ValueError(f'percentile must be in (0, 100], got {percentile!r}')
    quants = {n: m for n, m in model.named_modules()
              if isinstance(m, QuantReLU) and n not in skip}
    samples = {n: [] for n in quants}

    names = {m: n for n, m in quants.items()}

    def sampler(module):
        kept = samples[names[module]]

        def hook(mod, inputs, output):
            x = inputs[0].detach()
            pos = x[x > 0].float()
            if pos.numel() > num_samples:
                idx = torch.randint(pos.numel(), (num_samples,),
                                    device=pos.device)
                pos = pos[idx]
            kept.append(pos)
            return F.relu(x)  # full precision downstream
        return hook

    was_training = model.training
    model.eval()
    seen = 0
    try:
        with forward_hooks(names, sampler):
            for batch in batches:
                _run_batch(model, batch)
                seen += 1
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError('calibrate_alpha got no batches')
    result = {}
    for name, mod in quants.items():
        xs = [s for s in samples[name] if s.numel()]
        if not xs:  # never called or never positive: keep its alpha
            continue
        x = torch.cat(xs)
        if x.numel() > 2 ** 24 - 1:  # torch.quantile's limit
            x = x[torch.randperm(x.numel(), device=x.device)[:2 ** 24 - 1]]
        alpha = _alpha_from(x, method, percentile, mod.levels)
        mod.alpha.fill_(float(alpha.clamp_min(1e-4)))
        result[name] = mod.alpha.item()
    return result
