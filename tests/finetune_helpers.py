"""The tiny layer-wise fine-tuning set-up shared by tests/test_finetune.py
and its two-process run (``python -m torch.distributed.run ... this file``).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import tiny_cls_config  # noqa: E402


def finetune_cfg(data_root, work_dir, ckpt, world_size=1, **loop):
    """Tiny 2-bit QResNet (width 8) tuned at T = 3.

    Train and held-out batches split evenly over ``world_size`` ranks (the
    total batch stays the same), and training images are not augmented, so
    one process and several see the same samples.
    """
    cfg = tiny_cls_config(data_root, work_dir, load_from=ckpt)
    cfg.model.quant = dict(bits=2, alpha=2.0)
    cfg.train_dataloader.batch_size = 8 // world_size
    cfg.val_dataloader.batch_size = 8 // world_size
    cfg.train_dataloader.dataset.pipeline = cfg.test_pipeline
    cfg.train_cfg = dict(type='LayerwiseFinetuneLoop', iters_per_layer=2,
                         timesteps=3, evaluate=False, heldout_batches=1,
                         lr_candidates=[1e-3, 1e-2], log_interval=1,
                         joint_iters=2, joint_lr=1e-3)
    cfg.train_cfg.update(loop)
    cfg.optim_wrapper = dict(optimizer=dict(type='SGD', lr=1e-3,
                                            momentum=0.9))
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    return cfg


def train_tiny_qann(data_root, work_dir):
    """A 2-bit tiny QResNet trained well enough that harm shows in top-1;
    returns its checkpoint."""
    from mmengine.runner import Runner
    cfg = tiny_cls_config(data_root, work_dir)
    cfg.model.quant = dict(bits=2, alpha=2.0)
    cfg.train_cfg.max_epochs = 6
    cfg.train_cfg.val_interval = 6
    Runner.from_cfg(cfg).train()
    return os.path.join(work_dir, 'epoch_6.pth')


def main(data_root, ckpt, work_dir, out, loop='{}'):
    """One rank of a two-process run; rank 0 saves the tuned weights.
    ``loop``: train_cfg overrides as JSON."""
    import json

    import torch.distributed as dist
    from mmengine.runner import Runner

    import fastsnn_mm  # noqa: F401
    torch.set_num_threads(1)
    dist.init_process_group('gloo')
    cfg = finetune_cfg(data_root, work_dir, ckpt,
                       world_size=dist.get_world_size(), **json.loads(loop))
    cfg.launcher = 'pytorch'
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                                 device_ids=None)
    runner = Runner.from_cfg(cfg)
    runner.train()
    if dist.get_rank() == 0:
        torch.save(dict(state=runner.model.module.state_dict(),
                        report=runner.train_loop.report), out)
    dist.destroy_process_group()
    # a rank's teardown can abort (launch.exit_at_once says why): the
    # tools end their ranks this way, and so does this one
    from fastsnn_mm.utils.launch import exit_at_once
    exit_at_once(0)


if __name__ == '__main__':
    main(*sys.argv[1:6])
