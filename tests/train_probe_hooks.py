"""Hooks the resume and distributed tests put into the runs they start
(imported by those runs through ``custom_imports``; not part of the package).
"""
import json
import os
import signal

from mmengine.dist import all_reduce, is_main_process
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


@HOOKS.register_module()
class SigkillAtIterHook(Hook):
    """Kill this process with SIGKILL (no clean-up, as an OOM killer or a
    cluster pre-emption would) before iteration ``at_iter`` runs; only once
    per work dir, so the resumed run goes on."""

    priority = 'HIGHEST'

    def __init__(self, at_iter: int):
        self.at_iter = at_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        marker = os.path.join(runner.work_dir, 'killed_once')
        if runner.iter == self.at_iter and not os.path.exists(marker):
            open(marker, 'w').close()
            os.kill(os.getpid(), signal.SIGKILL)
