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


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds an object outside the allow-list."""


def _numpy_globals():
    """numpy types that pickled arrays and scalars refer to."""
    core = getattr(np, '_core', None) or np.core
    found = [np.ndarray, np.dtype, core.multiarray._reconstruct,
             core.multiarray.scalar]
    # numpy >= 1.25 pickles dtypes as instances of np.dtypes.<Name>DType
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    # pickles written by numpy 1.x name the old module path
    found += [(core.multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
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
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: the file holds a type outside the allow-list.
        RuntimeError: the file is not a readable checkpoint (corrupt, truncated).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r'GLOBAL ([\w.]+)', str(err))
        what = f'`{found.group(1)}`' if found else 'an object'
        raise UnsafeCheckpointError(
            f'refusing checkpoint {filename}: it holds {what}, which is not '
            'a type OpenMMLab checkpoints contain, so it was not unpickled.'
        ) from None
    except (RuntimeError, EOFError, ValueError) as err:
        raise RuntimeError(
            f'cannot read checkpoint {filename} (corrupt or not a torch '
            f'checkpoint): {str(err).splitlines()[0]}') from None


def _load_from_local(filename, map_location):
    return load_checkpoint_file(filename, map_location)


def install() -> None:
    """Route mmengine's local checkpoint loading through the safe loader."""
    torch.serialization.add_safe_globals(ALLOWED_GLOBALS)
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local,
                                     force=True)
