"""Import fastsnn_mm's core where the OpenMMLab task packages are missing.

The benchmarks need the neurons, the runner, the converter, QuantReLU and
the backbones: torch and mmengine. ``import fastsnn_mm`` also imports the
task wrappers (mmpretrain's classifier, mmdet's detector, mmseg's
segmentor, mmcv's ConvModule), which a bare GPU machine may not have. Where
one of those is missing, :func:`import_core` imports the core modules
without the two package ``__init__`` files that pull the task packages in
(``fastsnn_mm`` and ``fastsnn_mm.models``), and gives the package the
names its ``__init__`` would (``convert_to_snn``, ``QuantReLU``, ...).
Where everything is installed it is a plain ``import fastsnn_mm``.

Also a pytest plugin (``pytest -p core_import``, with this folder on
PYTHONPATH) so the tests that need only the core run on such a machine.
``FASTSNN_CORE_ONLY=1`` takes the core path even where the task packages
are installed: what a bare GPU machine sees, checked (and faster to start)
on a development machine.
"""
import importlib
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: what the task wrappers need beyond torch and mmengine
TASK_PACKAGES = ('mmcv', 'mmdet', 'mmseg', 'mmpretrain')
CORE = ('fastsnn_mm.quantization', 'fastsnn_mm.spiking',
        'fastsnn_mm.models.backbones')


def import_core() -> str:
    """'full' when the whole package imported, else 'core' (task wrappers
    left out because a task package is missing)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if hasattr(sys.modules.get('fastsnn_mm'), '__core_only__'):
        return 'core'  # stubbed by an earlier call
    if os.environ.get('FASTSNN_CORE_ONLY') == '1':
        for name in TASK_PACKAGES:  # as if not installed
            if name not in sys.modules:
                sys.modules[name] = None
    try:
        import fastsnn_mm  # noqa: F401
        return 'full'
    except ModuleNotFoundError as err:
        if (err.name or '').split('.')[0] not in TASK_PACKAGES:
            raise
        missing = err.name
    # modules imported before the failure stay in sys.modules (their
    # registrations done once); only the two failed packages are stubbed
    _stub_package('fastsnn_mm', os.path.join(ROOT, 'fastsnn_mm'))
    _stub_package('fastsnn_mm.models',
                  os.path.join(ROOT, 'fastsnn_mm', 'models'))
    pkg = sys.modules['fastsnn_mm']
    for name in CORE:
        mod = importlib.import_module(name)
        for attr in getattr(mod, '__all__', ()):
            setattr(pkg, attr, getattr(mod, attr))
    pkg.models.backbones = sys.modules['fastsnn_mm.models.backbones']
    pkg.__core_only__ = f'task wrappers not imported: no {missing}'
    return 'core'


def _stub_package(name: str, path: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(path, '__init__.py'),
        submodule_search_locations=[path])
    module = importlib.util.module_from_spec(spec)  # not executed
    sys.modules[name] = module
    parent, _, child = name.rpartition('.')
    if parent:
        setattr(sys.modules[parent], child, module)


def pytest_configure(config):
    """As a pytest plugin: before any test module is collected."""
    mode = import_core()
    if mode == 'core':
        print(f"core_import: {sys.modules['fastsnn_mm'].__core_only__}")
