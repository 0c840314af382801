"""Train a fastsnn-mm (or any mm) config: QANN training, progressive bits.

    python tools/train.py configs/yolo_fastsnn_voc.py [--work-dir DIR]
"""
import argparse
import warnings

# setuptools<82 (needed by mmcv and mm config scopes) warns on import
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmengine.runner import Runner

import fastsnn_mm  # noqa: F401  (registers modules, safe checkpoint loading)
from fastsnn_mm.utils.launch import (add_common_args, check_data,
                                     check_load_from,
                                     find_resumable_checkpoint, load_config,
                                     setup_distributed)


def main():
    parser = add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from the latest checkpoint in the work '
                        'dir, or from the given checkpoint')
    args = parser.parse_args()
    cfg = load_config(args)
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
    runner.train()


if __name__ == '__main__':
    main()
