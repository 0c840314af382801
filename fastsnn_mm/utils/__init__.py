from .allocator import retain_freed_memory
from .safe_checkpoint import (ALLOWED_GLOBALS, UnsafeCheckpointError,
                              load_checkpoint_file, save_checkpoint_atomic)

__all__ = ['ALLOWED_GLOBALS', 'UnsafeCheckpointError', 'load_checkpoint_file',
           'retain_freed_memory', 'save_checkpoint_atomic']
