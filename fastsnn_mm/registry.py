"""Registries of fastsnn-mm.

Generic parts (quantizers, neurons, backbones, hooks, loops) go into
mmengine's *root* registries: the mmdet, mmseg and mmpretrain registries are
children of the root and fall back to it, so one registration is visible from
every scope (and from ``ConvModule(act_cfg=...)``). Task wrappers register in
their own package's registry (see ``fastsnn_mm.models``).
"""
from mmengine.registry import HOOKS, LOOPS, MODELS

__all__ = ['MODELS', 'HOOKS', 'LOOPS', 'register_all_modules']


def register_all_modules(init_default_scope: bool = False) -> None:
    """Import every module of the package so all registrations run.

    Importing ``fastsnn_mm`` already does this; the function exists for
    symmetry with ``mmdet.utils.register_all_modules`` and friends.
    """
    import fastsnn_mm  # noqa: F401  (registers on import)
    import fastsnn_mm.engine  # noqa: F401
    import fastsnn_mm.models  # noqa: F401
    import fastsnn_mm.quantization  # noqa: F401
    import fastsnn_mm.spiking  # noqa: F401
    if init_default_scope:
        from mmengine.registry import DefaultScope
        DefaultScope.get_instance('fastsnn_mm', scope_name='mmengine')
