"""Write a file so that it is either whole or not there.

A run killed while writing (a checkpoint, a report, a metric table) must
not leave half a file under the final name, where a later ``--resume`` or
reader would take it for a whole one: write a temporary file in the same
folder, flush it to disk, then rename it over the target (atomic on POSIX).
"""
import os
import os.path as osp
import tempfile


def atomic_write(path: str, write, mode: str = 'wb') -> None:
    """Call ``write(f)`` on a temporary file, then rename it to ``path``.

    ``mode``: 'wb' or 'w'. The temporary file is removed if ``write``
    fails, and the old ``path`` (if any) stays as it was.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.',
                               suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise
