"""fastsnn-mm: Fast-SNN (quantized ANN -> spiking network) for OpenMMLab.

Importing the package registers every module (``custom_imports`` needs only
``'fastsnn_mm'``) and makes mmengine load checkpoints safely under torch>=2.6.
The mm task packages are optional: each task wrapper registers when its
package imports (see :mod:`fastsnn_mm.models`), and the quantization and
spiking cores need only torch and mmengine.

The package imports only downwards (``tests/test_import_layers.py``): the
registries, error types and task-package facts import nothing of it, and
``register_all_modules`` lives in :mod:`fastsnn_mm.setup_env`, above all
it imports.
"""
from .utils import safe_checkpoint as _safe_checkpoint

_safe_checkpoint.install()

from . import datasets, engine, errors, models  # noqa: F401,E402
from .quantization import *  # noqa: F401,F403,E402
from .quantization import __all__ as _quant_all  # noqa: E402
from .setup_env import register_all_modules  # noqa: E402
from .spiking import *  # noqa: F401,F403,E402
from .spiking import __all__ as _spiking_all  # noqa: E402

__version__ = '0.1.0'
__all__ = (['register_all_modules', '__version__'] + list(_quant_all) +
           list(_spiking_all))
