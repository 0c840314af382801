"""Train a fastsnn-mm (or any mm) config: QANN training, progressive bits.

    python tools/train.py configs/yolo_fastsnn_voc.py [--work-dir DIR]
"""
import argparse
import warnings

# setuptools<82 (needed by mmcv and mm config scopes) warns on import
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmengine.runner import Runner

import fastsnn_mm  # noqa: F401  (registers modules, safe checkpoint loading)
from fastsnn_mm.utils.launch import (add_common_args, check_checkpoint,
                                     check_data, check_load_from,
                                     check_task_packages, load_config,
                                     run_main, setup_distributed)


@run_main
def main():
    parser = add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from the latest checkpoint in the work '
                        'dir, or from the given checkpoint')
    args = parser.parse_args()
    cfg = load_config(args)
    check_task_packages(cfg, args.config)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
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
