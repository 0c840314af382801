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


def replace_modules(model: nn.Module, fn: Callable, skip=()) -> list:
    """Replace submodules of ``model`` in place by ``fn(path, module)``.

    ``fn`` returns the new module, None to keep the module and look inside
    it, or the module itself to keep it without looking inside. It is
    called once per module object, at its first path in registration
    order; a module registered at several places (under several parents,
    or twice under one) is replaced by the one new object everywhere, so
    what was shared stays shared. Every parent's ``_modules`` is visited,
    not ``named_children()``, which lists an object once per parent.

    Args:
        model: the root (never replaced itself).
        fn: ``(path, module) -> nn.Module | None``.
        skip: module-path patterns (:func:`~.patterns.path_matches`) left
            alone with everything below them.

    Returns:
        [(path, old, new)] for every place replaced, in visiting order.
    """
    from .patterns import path_matches
    skip = [skip] if isinstance(skip, str) else list(skip or ())
    decided, visited, done = {}, set(), []

    def visit(parent, prefix):
        if id(parent) in visited:
            return
        visited.add(id(parent))
        for attr, child in list(parent._modules.items()):
            path = f'{prefix}.{attr}' if prefix else attr
            if child is None or (skip and path_matches(path, skip)):
                continue
            if id(child) not in decided:
                decided[id(child)] = (child, fn(path, child))
            new = decided[id(child)][1]
            if new is None:
                visit(child, path)
            elif new is not child:
                setattr(parent, attr, new)
                done.append((path, child, new))

    visit(model, '')
    return done
