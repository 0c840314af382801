"""Helpers the other parts share, one floor above the registries.

Importing this package stays light (``import fastsnn_mm`` runs it first, to
make checkpoint loading safe). Two modules here serve ``tools/*.py`` and
sit above ``engine/`` instead: :mod:`.launch` and :mod:`.checkpoint_check`
may import any part of the package below them, and no part imports them
(the floors are listed in ``tests/test_import_layers.py``).
"""
from .allocator import retain_freed_memory
from .safe_checkpoint import (
    ALLOWED_GLOBALS,
    UnsafeCheckpointError,
    load_checkpoint_file,
    save_checkpoint_atomic,
)

__all__ = ['ALLOWED_GLOBALS', 'UnsafeCheckpointError', 'load_checkpoint_file',
           'retain_freed_memory', 'save_checkpoint_atomic']
