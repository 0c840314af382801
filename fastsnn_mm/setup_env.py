"""Set-up that needs the whole package: the top floor, above all it imports.

As in mmdet and mmseg (``utils/setup_env.py``), ``register_all_modules``
sits above the modules it imports, so the registries below it stay free of
upward imports.
"""


def register_all_modules(init_default_scope: bool = False) -> None:
    """Import every module of the package so all registrations run.

    Importing ``fastsnn_mm`` already does this; the function exists for
    symmetry with ``mmdet.utils.register_all_modules`` and friends.
    """
    import fastsnn_mm.datasets  # noqa: F401  (each registers on import)
    import fastsnn_mm.engine  # noqa: F401
    import fastsnn_mm.models  # noqa: F401
    import fastsnn_mm.quantization  # noqa: F401
    import fastsnn_mm.spiking  # noqa: F401
    if init_default_scope:
        from mmengine.registry import DefaultScope
        DefaultScope.get_instance('fastsnn_mm', scope_name='mmengine')
