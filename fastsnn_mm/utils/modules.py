"""Small helpers every layer uses on ``nn.Module`` trees.

Kept to torch and mmengine so the quantization and spiking cores can import
them without reaching above themselves.
"""
from contextlib import contextmanager
from typing import Callable, Iterable

from mmengine.model import is_model_wrapper
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP / mmengine wrapper, or ``model`` itself.

    Runners hand hooks and loops the wrapped model; every fastsnn-mm method
    (``to_snn``, ``neurons``, ``spiking_path``) lives on the inner one.
    """
    return model.module if is_model_wrapper(model) else model


@contextmanager
def forward_hooks(modules: Iterable[nn.Module],
                  make_hook: Callable[[nn.Module], Callable],
                  pre: bool = False):
    """Attach ``make_hook(module)`` as a forward (or, with ``pre``, forward
    pre-) hook to each of ``modules`` for the ``with`` block, and remove
    every one of them after, also when the block raises.

    Yields the list of modules hooked, in order.
    """
    modules = list(modules)
    handles = []
    try:
        for m in modules:
            hook = make_hook(m)
            handles.append(m.register_forward_pre_hook(hook) if pre
                           else m.register_forward_hook(hook))
        yield modules
    finally:
        for h in handles:
            h.remove()


@contextmanager
def eval_mode(*models: nn.Module):
    """Put ``models`` in eval mode for the ``with`` block (BN uses its
    running statistics and updates none), then give every module its own
    training flag back: a blanket ``train()`` after would undo a
    ``norm_eval`` or a frozen part."""
    flags = [(m, m.training) for model in models for m in model.modules()]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag
