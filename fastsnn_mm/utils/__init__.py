from .safe_checkpoint import (ALLOWED_GLOBALS, UnsafeCheckpointError,
                              load_checkpoint_file)

__all__ = ['ALLOWED_GLOBALS', 'UnsafeCheckpointError', 'load_checkpoint_file']
