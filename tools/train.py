"""Train a fastsnn-mm (or any mm) config: QANN training, progressive bits.

    python tools/train.py configs/yolo_fastsnn_voc.py [--work-dir DIR] [--amp]
"""
import argparse
import warnings

# setuptools<82 (needed by mmcv and mm config scopes) warns on import
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmengine.runner import Runner

import fastsnn_mm  # noqa: F401  (registers modules, safe checkpoint loading)
from fastsnn_mm.utils.launch import (
    add_common_args,
    check_checkpoint,
    check_data,
    check_load_from,
    check_task_packages,
    fail,
    find_resumable_checkpoint,
    load_config,
    run_main,
    setup_distributed,
)


def enable_amp(cfg, dtype=None):
    """Mixed precision as mmdet's tools/train.py switches it on: mmengine's
    ``AmpOptimWrapper`` (autocast forward, dynamic loss scaling), the rest
    of ``optim_wrapper`` kept. QuantReLU computes its levels in float32
    under autocast, so they stay exact. ``dtype``: autocast's dtype
    ('float16' or 'bfloat16'); None keeps the config's or autocast's
    default (float16 on CUDA)."""
    if cfg.get('optim_wrapper') is None:
        cfg.optim_wrapper = dict()
    wrapper = cfg.optim_wrapper
    if wrapper.get('type') != 'AmpOptimWrapper':
        wrapper['type'] = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    if dtype is not None:
        wrapper['dtype'] = dtype
    return cfg


def amp_device_available() -> bool:
    """Where AmpOptimWrapper runs (it asserts one of these)."""
    from mmengine import device
    return any(f() for f in (device.is_cuda_available,
                             device.is_npu_available,
                             device.is_mlu_available,
                             device.is_musa_available))


@run_main
def main():
    parser = add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from the latest checkpoint in the work '
                        'dir, or from the given checkpoint')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (mmengine '
                        'AmpOptimWrapper; needs a GPU)')
    parser.add_argument('--amp-dtype', choices=['float16', 'bfloat16'],
                        help='autocast dtype with --amp (default float16)')
    args = parser.parse_args()
    if args.amp_dtype and not args.amp:
        fail('--amp-dtype applies with --amp only')
    if args.amp and not amp_device_available():
        fail('--amp needs a CUDA GPU: mmengine 0.10.7\'s AmpOptimWrapper '
             'trains on GPU, NPU, MLU or MUSA only; drop --amp on this '
             'machine')
    cfg = load_config(args)
    check_task_packages(cfg, args.config)
    if args.amp:
        enable_amp(cfg, args.amp_dtype)
    if args.resume == 'auto':  # the newest checkpoint that reads back whole
        found = find_resumable_checkpoint(cfg.work_dir)
        if found:  # else a fresh start (from the config's load_from if any)
            cfg.resume, cfg.load_from = True, found
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    check_data(cfg, ['train', 'val'])
    if not cfg.get('resume'):
        check_load_from(cfg)
    setup_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    if not cfg.get('resume'):  # bit width, fit and precision: logged/refused
        check_checkpoint(runner, cfg.get('load_from'), 'load_from')
    runner.train()


if __name__ == '__main__':
    main()
