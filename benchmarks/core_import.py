"""Import fastsnn_mm where the OpenMMLab task packages may be missing.

The benchmarks need the neurons, the runner, the converter, QuantReLU and
the backbones: torch and mmengine. ``import fastsnn_mm`` registers a task
wrapper only where its package (mmcv, mmdet, mmseg, mmpretrain) imports,
so a bare GPU machine imports it as it is; :func:`import_core` says which
case this is, for the benchmark records.

Also a pytest plugin (``pytest -p core_import``, with this folder on
PYTHONPATH) so the tests that need only the core run on such a machine.
``FASTSNN_CORE_ONLY=1`` hides the task packages even where they are
installed: what a bare GPU machine sees, checked (and faster to start)
on a development machine.
"""
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: what the task wrappers need beyond torch and mmengine
TASK_PACKAGES = ('mmcv', 'mmdet', 'mmseg', 'mmpretrain')
CORE = ('fastsnn_mm.quantization', 'fastsnn_mm.spiking',
        'fastsnn_mm.models.backbones')


def import_core() -> str:
    """'full' when every task package is importable, else 'core' (the
    package then registers no wrapper of a missing task package)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if os.environ.get('FASTSNN_CORE_ONLY') == '1':
        for name in TASK_PACKAGES:  # as if not installed
            if name not in sys.modules:
                sys.modules[name] = None
    import fastsnn_mm
    missing = [name for name in TASK_PACKAGES if not _importable(name)]
    if not missing:
        return 'full'
    fastsnn_mm.__core_only__ = ('task wrappers not imported: no '
                                + ', '.join(missing))
    return 'core'


def _importable(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def pytest_configure(config):
    """As a pytest plugin: before any test module is collected."""
    mode = import_core()
    if mode == 'core':
        print(f"core_import: {sys.modules['fastsnn_mm'].__core_only__}")
