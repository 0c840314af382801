"""Refuse input batches an SNN would silently turn into wrong spikes.

A NaN or Inf reaching an IF neuron does not raise: comparisons with NaN are
false, so the neuron simply never fires (or always fires, for +Inf) and the
network returns ordinary-looking numbers. The runner therefore checks each
batch once before its T steps: one reduction over the input and one host
sync per batch, never per neuron or per step. The details of a bad batch
(how many values, which samples) are computed only when it is refused.
"""
import torch
from torch import nn

from ..errors import BadInputError


def first_conv(model: nn.Module):
    """(name, module) of the first Conv2d in registration order, or None.

    In mm models and plain ``nn.Sequential`` nets this is the layer that
    takes the image (data preprocessors hold no convs)."""
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            return name, mod
    return None


def check_channels(model: nn.Module, x: torch.Tensor) -> None:
    """Image batches [B, C, H, W] must have the first conv's C."""
    if not torch.is_tensor(x) or x.dim() != 4:
        return
    found = first_conv(model)
    if found is None:
        return
    name, conv = found
    if x.shape[1] != conv.in_channels:
        raise BadInputError(
            f'input batch has {x.shape[1]} channel(s) per image but the '
            f'first conv ({name}) takes {conv.in_channels}: convert the '
            'images (grayscale -> RGB, drop an alpha channel; in mm '
            "pipelines LoadImageFromFile with color_type='color')")


def check_finite(x: torch.Tensor) -> None:
    """Refuse a floating-point batch holding NaN or Inf (one host sync)."""
    if not torch.is_tensor(x) or not x.is_floating_point() \
            or x.device.type == 'meta':  # a meta tensor holds no values
        return
    if bool(torch.isfinite(x).all()):  # the only sync on the good path
        return
    nan, inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(1) \
        if x.dim() > 1 else None
    where = ''
    if bad is not None:
        idx = bad.nonzero().flatten().tolist()
        shown = ', '.join(map(str, idx[:8])) + (' ...' if len(idx) > 8 else '')
        where = f' in sample(s) {shown} of {x.shape[0]}'
    raise BadInputError(
        f'input batch holds {nan} NaN and {inf} Inf value(s){where}: an SNN '
        'would turn them into spikes without a word, so it refuses to run; '
        'fix the data or the preprocessing that made them (e.g. a division '
        'by a zero std)')


def check_snn_input(model: nn.Module, x) -> None:
    """Everything the runner checks on a batch before its T steps."""
    check_channels(model, x)
    check_finite(x)
