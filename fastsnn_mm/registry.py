"""Registries of fastsnn-mm, on the ground floor.

Generic parts (quantizers, neurons, backbones, hooks, loops) go into
mmengine's *root* registries: the mmdet, mmseg and mmpretrain registries are
children of the root and fall back to it, so one registration is visible from
every scope (and from ``ConvModule(act_cfg=...)``). Task wrappers register in
their own package's registry (see ``fastsnn_mm.models``).

Every module that registers something imports this one, so it imports
nothing of the package; ``register_all_modules``, which imports everything,
lives on the top floor in :mod:`fastsnn_mm.setup_env`.
"""
from mmengine.registry import HOOKS, LOOPS, MODELS

__all__ = ['MODELS', 'HOOKS', 'LOOPS']
