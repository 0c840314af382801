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
    fails (or a SIGTERM turned into an exception stops it: see
    ``fastsnn_mm.utils.launch.stop_on_sigterm``), and the old ``path`` (if
    any) stays as it was. The file gets the permissions ``open`` would give
    it (the old file's, else those the umask allows), not ``mkstemp``'s
    owner-only ones.
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
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException as err:
        if osp.exists(tmp):
            os.unlink(tmp)
        stop = _exit_behind(err)
        if stop is not None and stop is not err:
            # a SIGTERM (SystemExit) raised inside the writer's callback
            # and the writer's own clean-up then failed on the cut stream
            # (torch.save: "unexpected pos"): the stop is what happened
            raise stop from None
        raise


def _exit_behind(err: BaseException):
    """The SystemExit ``err`` is, or was raised while handling, else None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SystemExit):
            return err
        seen.add(id(err))
        err = err.__context__
    return None


def _mode_for(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without setting it where Linux tells it
    (setting it, even back, races with threads creating files)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_ATOMIC_BACKEND = None


def atomic_local_backend():
    """mmengine's ``LocalBackend`` whose ``put`` / ``put_text`` go through
    :func:`atomic_write` (its own open the final name and write into it)."""
    global _ATOMIC_BACKEND
    if _ATOMIC_BACKEND is None:
        from mmengine.fileio.backends import LocalBackend

        class AtomicLocalBackend(LocalBackend):
            """Local files written whole or not at all."""

            def put(self, obj, filepath):
                atomic_write(str(filepath), lambda f: f.write(obj))

            def put_text(self, obj, filepath, encoding='utf-8'):
                atomic_write(str(filepath),
                             lambda f: f.write(obj.encode(encoding)))
        _ATOMIC_BACKEND = AtomicLocalBackend
    return _ATOMIC_BACKEND


def write_local_files_atomically() -> None:
    """Make mmengine write local files through :func:`atomic_write`.

    Why: mmengine saves a checkpoint (``CheckpointHook``, ``Runner.
    save_checkpoint``) and dumps results through its file backend for plain
    paths, ``LocalBackend``, which opens ``epoch_N.pth`` itself and writes
    into it: a rank killed (or stopped) in between leaves a truncated or
    empty file under the final name. Registered over mmengine's ``local``
    backend for this process; paths with a prefix (``s3://``) keep theirs.
    """
    from mmengine.fileio import register_backend
    from mmengine.fileio.backends.registry_utils import backends
    backend = atomic_local_backend()
    if backends.get('local') is not backend:
        register_backend('local', backend, force=True, prefixes='')
