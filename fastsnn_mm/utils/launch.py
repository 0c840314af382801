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
    """mmengine's pytorch launcher assumes CUDA; on CPU start gloo ourselves
    so the Runner skips its own init_dist, and let DDP run without devices."""
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                                 device_ids=None)
