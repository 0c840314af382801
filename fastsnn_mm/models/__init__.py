"""Task models: convertible backbones/necks and timestep-aware wrappers.

Each task wrapper needs its mm task package (classification: mmpretrain,
detection: mmdet, segmentation: mmseg) and registers in that package's
registry when the package imports; a user with only some of them installed
gets the wrappers of those. A missing package's wrapper name is registered
in mmengine's root registry as a stand-in that says what to install, so a
config asking for it fails with that line instead of "not in registry".
"""
import importlib

from ..errors import MissingPackageError
from ..registry import MODELS as ROOT_MODELS
from ..tasks import PIP_NAMES, TASK_WRAPPERS
from .backbones import *  # noqa: F401,F403
from .timestep_mixin import TimestepMixin  # noqa: F401

#: submodule of this package -> the packages it imports
_OPTIONAL = (('necks', ('mmcv', )), ('classifiers', ('mmpretrain', )),
             ('detectors', ('mmdet', )), ('segmentors', ('mmseg', )))
#: mm packages that could not be imported (name -> the error's text)
MISSING_PACKAGES = {}


def _missing(err: ImportError, packages) -> bool:
    """True when ``err`` says one of ``packages`` (or mmcv, which all three
    need) is absent; a package that is installed but broken keeps its
    error."""
    name = (getattr(err, 'name', None) or '').split('.')[0]
    return isinstance(err, ModuleNotFoundError) and \
        name in set(packages) | {'mmcv', 'mmengine'}


def _stand_in(name: str, package: str):
    """A builder for ``name`` that says which package to install."""
    def build(*args, **kwargs):
        raise MissingPackageError(
            f'model type {name} needs {package}, which is not installed: '
            f'pip install {PIP_NAMES.get(package, package)}')
    build.__name__ = name
    return build


__all__ = ['TimestepMixin', 'TASK_WRAPPERS', 'MISSING_PACKAGES']
for _sub, _packages in _OPTIONAL:
    try:
        _mod = importlib.import_module(f'.{_sub}', __name__)
    except ImportError as _err:
        if not _missing(_err, _packages):
            raise
        MISSING_PACKAGES[_packages[0]] = str(_err)
        continue
    for _name in _mod.__all__:
        globals()[_name] = getattr(_mod, _name)
        __all__.append(_name)
for _name, _package in TASK_WRAPPERS.items():
    if _name not in globals() and _name not in ROOT_MODELS:
        ROOT_MODELS.register_module(name=_name,
                                    module=_stand_in(_name, _package))
