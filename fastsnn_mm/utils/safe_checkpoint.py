"""Safe loading of OpenMMLab checkpoints under torch >= 2.6.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; torch now
defaults to ``weights_only=True`` and refuses mm checkpoints because they hold
a few non-tensor objects (mmengine's HistoryBuffer, numpy arrays and scalars).
Instead of switching the safe loader off, we allow-list exactly those types
and route mmengine's local-file loader through ``weights_only=True``. Anything
else in a file is refused with an error that names the offending type; the
file is never unpickled beyond that point.
"""
import collections
import os.path as osp
import pickle
import re

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from ..errors import CheckpointError, MissingFileError
from .atomic import atomic_write


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holds an object outside the allow-list."""


def _numpy_globals():
    """numpy types that pickled arrays and scalars refer to."""
    core = getattr(np, '_core', None) or np.core
    found = [np.ndarray, np.dtype, core.multiarray._reconstruct,
             core.multiarray.scalar]
    # numpy >= 1.25 pickles dtypes as instances of np.dtypes.<Name>DType
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes)
                  if n.endswith('DType')]
    # pickles written by numpy 1.x name the old module path
    found += [(core.multiarray._reconstruct,
               'numpy.core.multiarray._reconstruct'),
              (core.multiarray.scalar, 'numpy.core.multiarray.scalar')]
    return found


_STATISTICS = {'min', 'max', 'current', 'mean'}


def _history_buffer_getattr(obj, name):
    """Stands in for ``builtins.getattr`` while unpickling.

    A HistoryBuffer pickles its statistics table, whose values are methods
    such as ``HistoryBuffer.min``; pickle refers to them as
    ``getattr(HistoryBuffer, 'min')``. Only that lookup is allowed.
    """
    allowed = _STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL builtins.getattr({obj!r}, {name!r})')


ALLOWED_GLOBALS = [HistoryBuffer, collections.OrderedDict,
                   collections.defaultdict,
                   (_history_buffer_getattr, 'builtins.getattr')
                   ] + _numpy_globals()


def load_checkpoint_file(filename, map_location=None):
    """``torch.load`` with ``weights_only=True`` and the mm allow-list.

    Raises:
        MissingFileError: the file does not exist (a ``FileNotFoundError``).
        UnsafeCheckpointError: the file holds a type outside the allow-list
            (nothing of it runs: the unpickler stops at that type's name).
        CheckpointError: the file is not a readable checkpoint (truncated,
            corrupt, or some other kind of file).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise MissingFileError(f'checkpoint {filename} not found')
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r'GLOBAL ([\w.]+)', str(err))
        if found is None:  # not a refused type: the bytes are not a pickle
            raise _unreadable(filename, err) from None
        raise UnsafeCheckpointError(
            f'refusing checkpoint {filename}: it holds `{found.group(1)}`, '
            'which is not a type OpenMMLab checkpoints contain, so it was '
            'not unpickled; use a checkpoint from a source you trust, saved '
            'by mmengine or torch.save of a state dict') from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError,
            IndexError, AttributeError) as err:
        raise _unreadable(filename, err) from None


def _unreadable(filename, err):
    with open(filename, 'rb') as f:
        head = f.read(16)
    if head[:2] == b'PK' or head[:1] == b'\x80':  # a torch zip or a pickle
        reason = (str(err).split('. ')[0].splitlines() or [''])[0][:120]
        reason = reason or type(err).__name__
    else:
        reason = f'it starts with {head!r}'
    return CheckpointError(
        f'cannot read checkpoint {filename} ({osp.getsize(filename)} bytes): '
        f'it is truncated, corrupt or not a torch checkpoint ({reason}); '
        'save or copy it again')


def save_checkpoint_atomic(checkpoint: dict, filename: str) -> None:
    """``torch.save`` through :func:`atomic_write`: a run killed while
    saving leaves the old file (or none), never half a checkpoint under
    the final name."""
    atomic_write(filename, lambda f: torch.save(checkpoint, f))


def _load_from_local(filename, map_location):
    return load_checkpoint_file(filename, map_location)


def install() -> None:
    """Route mmengine's local checkpoint loading through the safe loader."""
    torch.serialization.add_safe_globals(ALLOWED_GLOBALS)
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local,
                                     force=True)
