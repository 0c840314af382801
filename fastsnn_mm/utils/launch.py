"""What tools/train.py and tools/test.py share: config loading, checks of
data, packages and checkpoints before a run, one-line errors, and
distributed start-up on machines without GPUs."""
import contextlib
import datetime
import functools
import importlib.util
import logging
import os
import re
import signal
import sys
import time

import torch
from mmengine.config import Config, DictAction

from ..errors import FastSNNError, MissingPackageError
from ..tasks import PIP_NAMES, TASK_WRAPPERS
from .atomic import write_local_files_atomically


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
    and exit code 2; anything else keeps its traceback (it is a bug). The
    mmengine instances the run made are released when it ends, however it
    ends (see :func:`released_mm_instances`)."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            with released_mm_instances():
                try:
                    result = main(*args, **kwargs)
                except FastSNNError as err:
                    fail(one_line(err))
                except Exception as err:
                    if not _lost_a_peer(err):
                        raise
                    _await_launcher_stop()
                    fail(_collective_failed(err), code=1)
            if leave_process_group():
                exit_at_once(0)
            return result
        except Stopped as stopped:
            # the clean-up on the way up (a write's) has run; skip the
            # interpreter's teardown (seconds of module and gloo destructors
            # on a busy CPU) so the launcher sees this rank go at once
            exit_at_once(stopped.code)
        except SystemExit as done:  # fail(): one line said, nothing in flight
            if leave_process_group():
                exit_at_once(done.code if isinstance(done.code, int) else 1)
            raise
    return wrapped


def exit_at_once(code: int):
    """End this process now: logs and streams flushed, the interpreter's
    teardown skipped.

    Why for a rank whose work is done: after its process group is gone the
    teardown still destroys torch's C++ statics (the rendezvous store and
    its threads); on a slow run (issue 26: ``MKL_ENABLE_INSTRUCTIONS=
    SSE4_2``) a rank now and then died there with SIGABRT, "terminate
    called without an active exception" (a joinable std::thread
    destroyed), turning a finished run into exit code 134. Files are
    written atomically and closed before this point; nothing is lost."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _manager_classes():
    """mmengine's process-wide registries of named instances: every
    ``ManagerMixin`` subclass (MMLogger, MessageHub, Visualizer and the task
    packages' visualizers, DefaultScope) keeps its own ``_instance_dict``."""
    from mmengine.utils import ManagerMixin
    found, todo = [], [ManagerMixin]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


@contextlib.contextmanager
def released_mm_instances():
    """Forget the MMLoggers, MessageHubs, Visualizers and DefaultScopes made
    inside the block when it ends, closing the loggers' handlers.

    Why: a Runner names these ``<config>_<YYYYmmdd_HHMMSS>`` and takes them
    with ``get_instance``, which hands back an existing instance of that
    name. A second run of the same config in the same process within the
    same second (a tool run in-process, as the tests do) therefore got the
    first run's logger: its StreamHandler still wrote to the ``sys.stdout``
    of the first run (pytest's capture stream, closed by then; logging
    answers with ``--- Logging error ---`` and a traceback on stderr), its
    FileHandler to the first run's log file, and its MessageHub carried the
    first run's history. Released, each run builds its own; instances made
    before the block (a caller's own) are left alone.
    """
    from mmengine.utils.manager import _accquire_lock, _release_lock
    before = {cls: set(cls._instance_dict) for cls in _manager_classes()}
    try:
        yield
    finally:
        released = []
        _accquire_lock()
        try:
            for cls in _manager_classes():
                kept = before.get(cls, ())
                for name in [n for n in cls._instance_dict if n not in kept]:
                    released.append(cls._instance_dict.pop(name))
        finally:
            _release_lock()
        for instance in released:
            if isinstance(instance, logging.Logger):
                for handler in list(instance.handlers):
                    instance.removeHandler(handler)
                    with contextlib.suppress(OSError, ValueError):
                        handler.flush()
                    handler.close()  # a log file's; never sys.stdout


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
    # checkpoints and dumps whole or not there, should the run be killed
    write_local_files_atomically()
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
    ``find_unused_parameters`` from the config). gloo's timeout is bounded
    (:func:`gloo_timeout`), and SIGTERM ends a rank cleanly
    (:func:`stop_on_sigterm`).
    """
    global _STARTED_GROUP
    if cfg.launcher == 'none':
        return
    stop_on_sigterm()
    import torch.distributed as dist
    # this run starts the group (here on CPU, in the Runner on GPUs)
    _STARTED_GROUP = _STARTED_GROUP or not dist.is_initialized()
    if torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        fail(f'--launcher {cfg.launcher} needs GPUs (mmengine binds each '
             'process to one); on CPU start the processes with '
             'tools/dist_train.sh or tools/dist_test.sh')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo',
                                timeout=datetime.timedelta(
                                    seconds=gloo_timeout(cfg)))
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


#: seconds a CPU (gloo) rank waits in a collective for a peer that is alive
#: but silent, unless the config's ``env_cfg.dist_cfg.timeout`` says
#: otherwise (gloo's own default is 30 minutes). A peer that dies is
#: noticed at once by tools/launch_ranks.py; this bounds a hung one. It
#: must outlast the longest step one rank takes alone while the others wait
#: (rank 0 computing a metric over a whole val split, writing a checkpoint),
#: which on CPU can take minutes: hence 300, not less.
GLOO_TIMEOUT_S = 300

#: set in each rank by tools/launch_ranks.py (the launcher's pid); the same
#: name as its ``LAUNCHER_ENV`` (tools/ is not importable from here)
LAUNCHER_ENV = 'FASTSNN_LAUNCHER_PID'

#: how long a rank whose collective failed waits for the launcher's SIGTERM
#: (it comes within milliseconds when a peer died) before it reports the
#: error itself
AWAIT_STOP_S = 5.0


def gloo_timeout(cfg) -> float:
    """The gloo collective timeout in seconds: ``env_cfg.dist_cfg.timeout``
    (mmengine's own setting, in seconds) or :data:`GLOO_TIMEOUT_S`."""
    dist_cfg = (cfg.get('env_cfg') or {}).get('dist_cfg') or {}
    timeout = dist_cfg.get('timeout', GLOO_TIMEOUT_S)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) \
            or timeout <= 0:
        fail(f'env_cfg.dist_cfg.timeout must be a number of seconds > 0, '
             f'got {timeout!r}')
    return float(timeout)


#: whether :func:`setup_distributed` saw this process start its group
_STARTED_GROUP = False


def leave_process_group() -> bool:
    """Destroy the process group this run started, before the interpreter
    exits; True when this process had started one (a launched rank).

    Why: the tools never did, and neither does mmengine. Left to the
    interpreter's teardown, the group's destructor can run after the
    interpreter is gone (torch 2.14's ``destroy_process_group`` says so of
    pending work: "grabbing the GIL ... will crash"), and the rank dies
    with SIGABRT after its work is done. That is the likely source of the
    "terminate called without an active exception" aborts that
    tests/test_distributed.py runs again: with log_level WARNING the last
    lines on stderr before such an abort are DDP's warnings from wrapping
    the model, so one at exit reads as one at start-up. (Not reproduced
    here, in about 60 two-process runs with torch 2.14.1.)
    """
    global _STARTED_GROUP
    if not _STARTED_GROUP:
        return False
    _STARTED_GROUP = False
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()
    return True


def stop_on_sigterm():
    """Make SIGTERM end this rank with :class:`Stopped` (a ``SystemExit``,
    code 143) instead of on the spot.

    The launcher (tools/launch_ranks.py, or torchrun) stops the surviving
    ranks with SIGTERM when one dies. An exception lets a write in progress
    finish or clean up (:func:`~fastsnn_mm.utils.atomic.atomic_write`
    removes its temporary file; a checkpoint mmengine writes in one call is
    whole or not started), where the default action could leave it
    half-written. No traceback: SystemExit prints none; :func:`run_main`
    then exits at once. Only in the main thread (where Python runs signal
    handlers)."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum, frame):
        signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM: at once
        raise Stopped(128 + signum)
    signal.signal(signal.SIGTERM, stop)


class Stopped(SystemExit):
    """SIGTERM, raised in the main thread by :func:`stop_on_sigterm`."""


def _lost_a_peer(err: BaseException) -> bool:
    """An error of a collective (a peer rank gone or silent) in a rank that
    tools/launch_ranks.py started."""
    if not os.environ.get(LAUNCHER_ENV):
        return False
    import torch.distributed as dist
    if isinstance(err, getattr(dist, 'DistError', ())):
        return True
    return isinstance(err, RuntimeError) and 'gloo' in str(err).lower()


def _collective_failed(err: BaseException) -> str:
    """The one line of a rank whose collective failed and whose launcher
    did not stop it: a peer hangs (gloo's timeout ran out) or the link
    broke."""
    rank = os.environ.get('RANK', '?')
    return (f'rank {rank}: a collective with the other ranks failed '
            f'({one_line(err)}): a peer rank hangs, or the connection to it '
            'broke; if a rank works alone for longer than that (rank 0 '
            'computing a metric), raise env_cfg.dist_cfg.timeout (seconds, '
            f'default {GLOO_TIMEOUT_S})')


def _await_launcher_stop():
    """A collective failed: if a peer died, the launcher has seen it and its
    SIGTERM (a ``SystemExit`` here, :func:`stop_on_sigterm`) is on its way;
    wait for it so that the launcher's one line says what happened, not a
    traceback of this rank's. If none comes (a peer hangs: no rank died),
    return: the rank says so in one line."""
    deadline = time.monotonic() + AWAIT_STOP_S
    while time.monotonic() < deadline:
        time.sleep(0.05)


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
