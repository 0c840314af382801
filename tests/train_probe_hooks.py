"""Hooks the resume and distributed tests put into the runs they start
(imported by those runs through ``custom_imports``; not part of the package).
"""
import json
import os
import signal
import time

from mmengine.dist import all_reduce, get_rank, is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class LossRecorderHook(Hook):
    """Append each iteration's loss, averaged over ranks, to
    ``work_dir/losses.jsonl`` at full precision (the logger smooths and
    rounds; these tests compare exact values)."""

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        loss = outputs['loss'].detach().clone().double()
        all_reduce(loss, op='mean')
        if is_main_process():
            with open(os.path.join(runner.work_dir, 'losses.jsonl'), 'a') as f:
                f.write(json.dumps(dict(epoch=runner.epoch, iter=runner.iter,
                                        loss=loss.item())) + '\n')


def _sigkill_once(work_dir):
    """SIGKILL this process unless the work dir's marker says it was done
    before; the marker holds the time of the kill (the killed-rank tests
    time the survivors' stop from it)."""
    marker = os.path.join(work_dir, 'killed_once')
    if os.path.exists(marker):
        return
    with open(marker, 'w') as f:
        f.write(repr(time.time()))
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class SigkillAtIterHook(Hook):
    """Kill this process with SIGKILL (no clean-up, as an OOM killer or a
    cluster pre-emption would) before iteration ``at_iter`` runs; only once
    per work dir, so the resumed run goes on. ``rank``: only that rank of a
    distributed run (None: any)."""

    priority = 'HIGHEST'

    def __init__(self, at_iter: int, rank=None):
        self.at_iter = at_iter
        self.rank = rank

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.at_iter and self.rank in (None, get_rank()):
            _sigkill_once(runner.work_dir)


@HOOKS.register_module()
class SigkillAfterProgressSaveHook(Hook):
    """Layer-wise fine-tuning calls no iteration hooks: kill rank ``rank``
    with SIGKILL right after the loop's ``saves``-th progress save (every
    rank calls it; rank 0 writes), once per work dir."""

    def __init__(self, saves: int, rank: int = 1):
        self.saves, self.rank = saves, rank

    def before_train(self, runner):
        from fastsnn_mm.engine.loops.finetune_progress import (
            FinetuneProgress,
        )
        if get_rank() != self.rank:
            return
        save, calls = FinetuneProgress.save, []

        def save_then_die(progress, *args, **kwargs):
            save(progress, *args, **kwargs)
            calls.append(1)
            if len(calls) == self.saves:
                _sigkill_once(runner.work_dir)
        FinetuneProgress.save = save_then_die
