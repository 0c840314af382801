"""What tools/train.py and tools/test.py share: config loading, data-root
checks, SNN flags and distributed start-up on machines without GPUs."""
import os
import sys

import torch
from mmengine.config import Config, DictAction


def add_common_args(parser):
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. train_cfg.max_epochs=3')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def fail(msg: str, code: int = 2):
    """One clear line on stderr, no traceback."""
    print(f'error: {msg}', file=sys.stderr)
    sys.exit(code)


def load_config(args):
    if not os.path.isfile(args.config):
        fail(f'config file {args.config} not found')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
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


def check_data(cfg, splits):
    """Fail early, in one line, when a data root the run needs is missing."""
    from fastsnn_mm.datasets.check import check_data_root
    keys = [f'{s}_dataloader' for s in splits] + ['data_layout']
    needed = Config({k: cfg[k] for k in keys if cfg.get(k) is not None})
    try:
        check_data_root(needed)
    except FileNotFoundError as err:
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
