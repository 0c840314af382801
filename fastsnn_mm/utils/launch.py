"""What tools/train.py and tools/test.py share: config loading, checks of
data, packages and checkpoints before a run, one-line errors, and
distributed start-up on machines without GPUs."""
import functools
import importlib.util
import os
import re
import sys

import torch
from mmengine.config import Config, DictAction

from ..errors import FastSNNError, MissingPackageError
from ..tasks import PIP_NAMES, TASK_WRAPPERS


def add_common_args(parser):
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir',
                        help='directory for logs and checkpoints')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. train_cfg.max_epochs=3')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def fail(msg: str, code: int = 2):
    """One clear line on stderr, no traceback."""
    print(f'error: {msg}', file=sys.stderr)
    sys.exit(code)


def one_line(err: BaseException) -> str:
    """An error's message on one line."""
    return ' '.join(str(err).split())


def run_main(main):
    """Run a tool's ``main``: errors a user can fix by changing their input
    (:class:`~fastsnn_mm.errors.FastSNNError`) end as one line on stderr
    and exit code 2; anything else keeps its traceback (it is a bug)."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except FastSNNError as err:
            fail(one_line(err))
    return wrapped


def require_package(package: str, why: str) -> None:
    """Raise :class:`MissingPackageError` naming what to install."""
    if package in sys.modules and sys.modules[package] is not None:
        return
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingPackageError(
            f'{why} needs {package}, which is not installed: pip install '
            f'{PIP_NAMES.get(package, package)}')


def check_task_packages(cfg, config_name: str = 'the config') -> None:
    """The config's scope and model type need their mm task packages."""
    scope = cfg.get('default_scope')
    if scope in PIP_NAMES:
        require_package(scope, f"{config_name} (default_scope='{scope}')")
    model_type = (cfg.get('model') or {}).get('type')
    if model_type in TASK_WRAPPERS:
        require_package(TASK_WRAPPERS[model_type],
                        f'{config_name} (model type {model_type})')


def load_config(args):
    if not os.path.isfile(args.config):
        fail(f'config file {args.config} not found')
    try:
        cfg = Config.fromfile(args.config)
    except ImportError as err:  # a base config of a missing task package
        pkg = re.search(r'\b(mm[a-z]+)\b', str(err))
        if pkg is None or pkg.group(1) not in PIP_NAMES:
            raise
        fail(f'config {args.config} inherits configs of {pkg.group(1)}, '
             'which is not installed: pip install '
             f'{PIP_NAMES[pkg.group(1)]}')
    except SyntaxError as err:
        fail(f'config {args.config} is not valid Python: {one_line(err)}')
    if args.cfg_options:
        try:
            cfg.merge_from_dict(args.cfg_options)
        except (TypeError, KeyError) as err:
            fail(f'--cfg-options cannot be applied to {args.config}: '
                 f'{one_line(err)}'.replace('"', ''))
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        name = os.path.splitext(os.path.basename(args.config))[0]
        cfg.work_dir = os.path.join('work_dirs', name)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return cfg


def check_load_from(cfg):
    """A missing ``load_from`` (e.g. the previous bit-width not trained yet)
    is one line, not mmengine's traceback."""
    path = cfg.get('load_from')
    if path and '://' not in path and not os.path.isfile(path):
        fail(f'load_from checkpoint {path} not found (train the config it '
             'comes from first, or pass --cfg-options load_from=PATH)')


def check_checkpoint(runner, path, purpose):
    """Before mmengine loads ``path`` into the runner's model (which would
    skip what does not fit with only a warning): refuse or log what does
    not fit (see :func:`~fastsnn_mm.utils.checkpoint_check.
    check_checkpoint_fits`) and return what it found (``snn``: an SNN
    checkpoint). Local files only (``{}`` for others)."""
    if not path or '://' in str(path):
        return {}
    from .checkpoint_check import check_checkpoint_fits
    from .modules import unwrap_model
    return check_checkpoint_fits(unwrap_model(runner.model), path, purpose)


def check_data(cfg, splits):
    """Fail early, in one line, when data the run needs is missing or bad:
    the data root and split lists, then every file the split lists name
    (``check_data_files=False`` in a config skips the second part)."""
    from fastsnn_mm.datasets.check import check_data_files, check_data_root
    keys = [f'{s}_dataloader' for s in splits] + ['data_layout']
    needed = Config({k: cfg[k] for k in keys if cfg.get(k) is not None})
    try:
        check_data_root(needed)
        if cfg.get('check_data_files', True):
            needed['model'] = cfg.get('model')
            check_data_files(needed)
    except (FastSNNError, FileNotFoundError) as err:
        fail(str(err))


def setup_distributed(cfg):
    """Start-up for ``--launcher pytorch`` (torchrun) on machines without
    GPUs; on GPUs mmengine's own path (NCCL) runs unchanged.

    mmengine 0.10.7's launcher calls ``torch.cuda.set_device`` and wraps the
    model with ``device_ids=[LOCAL_RANK]``, both of which fail on CPU. So:
    start the gloo process group here (the Runner then skips its own
    ``init_dist``) and let DDP run without devices, with the wrapper
    settings mmengine would pick (``broadcast_buffers=False``,
    ``find_unused_parameters`` from the config).
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        fail(f'--launcher {cfg.launcher} needs GPUs (mmengine binds each '
             'process to one); on CPU start the processes with '
             'tools/dist_train.sh or tools/dist_test.sh (torchrun)')
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if cfg.get('sync_bn'):
        # torch's SyncBatchNorm refuses CPU tensors in training
        print(f'warning: sync_bn={cfg.sync_bn!r} dropped: SyncBatchNorm needs '
              'GPUs; on CPU each process keeps its own BN statistics',
              file=sys.stderr)
        cfg.sync_bn = None


def find_resumable_checkpoint(work_dir: str):
    """The checkpoint ``--resume`` continues from: the one ``last_checkpoint``
    names if it reads back whole, else the newest whole ``*.pth`` in
    ``work_dir`` (with a warning naming what was skipped), else None.

    mmengine writes ``last_checkpoint`` after the checkpoint itself, so a
    kill during the write leaves it naming the previous file; but
    ``CheckpointHook`` deletes the oldest kept file *before* writing the
    new one, so with ``max_keep_ckpts=1`` the pointer can name a file that
    is gone, next to a truncated new one. Checking a file reads it once
    (CRCs), without unpickling anything.
    """
    pointer = os.path.join(work_dir, 'last_checkpoint')
    named = None
    if os.path.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
    found = [os.path.join(work_dir, n) for n in os.listdir(work_dir)
             if n.endswith('.pth')] if os.path.isdir(work_dir) else []
    found.sort(key=os.path.getmtime, reverse=True)
    skipped = []
    for path in dict.fromkeys(([named] if named else []) + found):
        if _is_whole_checkpoint(path):
            if skipped:
                _warn_skipped(skipped, f'resuming from {path}')
            return path
        skipped.append(path)
    if skipped:
        _warn_skipped(skipped, 'no whole checkpoint left: training starts '
                      'from the beginning')
    return None


def _warn_skipped(paths, outcome):
    print(f'warning: --resume skipped {", ".join(paths)} (missing or not a '
          'whole checkpoint: was the run killed while writing it?); '
          f'{outcome}', file=sys.stderr)


def _is_whole_checkpoint(path: str) -> bool:
    """torch.save writes a zip whose directory sits at the end, so a file
    cut short does not open, and every member's CRC is checked."""
    import zipfile
    if not os.path.isfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (zipfile.BadZipFile, OSError):
        return False
