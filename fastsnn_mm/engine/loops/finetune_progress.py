"""Where layer-wise fine-tuning keeps its progress, so a killed run resumes
at the layer group it had reached.

After every group the loop writes one checkpoint in the work dir
(``layerwise_progress.pth``): the tuned SNN weights as ``state_dict``, the
untouched QANN the layers are matched against as ``qann_state_dict``, and
under ``meta['layerwise']`` how many groups are done, the per-group report
and the metric so far. It is a regular mmengine checkpoint (``meta``,
``message_hub``) named in ``last_checkpoint``, so ``tools/train.py
--resume`` finds it the way it finds any other. Files are written to a
temporary name and renamed: a kill leaves the previous file whole.
"""
import json
import os.path as osp
import time

import torch
from mmengine.dist import is_main_process

from ...utils.atomic import atomic_write
from ...utils.safe_checkpoint import load_checkpoint_file

PROGRESS_FILE = 'layerwise_progress.pth'
REPORT_FILE = 'layerwise_finetune.json'


def write_json(path, data):
    """Write ``data`` as JSON, atomically (main process only)."""
    if is_main_process():
        atomic_write(path, lambda f: f.write(
            json.dumps(data, indent=2).encode()))


def save_progress(runner, snn_state, qann_state, progress):
    """Write the progress checkpoint and point ``last_checkpoint`` at it."""
    if not is_main_process():
        return
    ckpt = dict(
        meta=dict(epoch=0, iter=progress['iter'], seed=runner.seed,
                  experiment_name=runner.experiment_name,
                  time=time.strftime('%Y%m%d_%H%M%S', time.localtime()),
                  layerwise=progress),
        state_dict={k: v.detach().cpu() for k, v in snn_state.items()},
        qann_state_dict={k: v.detach().cpu() for k, v in qann_state.items()},
        message_hub=runner.message_hub.state_dict())
    path = osp.join(runner.work_dir, PROGRESS_FILE)
    atomic_write(path, lambda f: torch.save(ckpt, f))
    atomic_write(osp.join(runner.work_dir, 'last_checkpoint'),
                  lambda f: f.write(path.encode()))


def find_resume_checkpoint(runner):
    """The checkpoint a ``resume=True`` run resumes from, or None.

    Mirrors mmengine's choice: ``load_from`` when given, else the one named
    in the work dir's ``last_checkpoint``.
    """
    cfg = runner.cfg
    if not cfg.get('resume', False):
        return None
    if cfg.get('load_from'):
        return cfg.load_from
    last = osp.join(runner.work_dir, 'last_checkpoint')
    if not osp.isfile(last):
        raise FileNotFoundError(
            f'nothing to resume in {runner.work_dir} (no last_checkpoint): '
            'start layer-wise fine-tuning without --resume and with '
            'load_from=<QANN checkpoint>')
    with open(last) as f:
        return f.read().strip()


def load_progress(path):
    """(progress dict, SNN state, QANN state) of a progress checkpoint;
    None when ``path`` is another kind of checkpoint (a QANN to start from)."""
    ckpt = load_checkpoint_file(path, map_location='cpu')
    progress = ckpt.get('meta', {}).get('layerwise')
    if progress is None or 'qann_state_dict' not in ckpt:
        return None
    return progress, ckpt['state_dict'], ckpt['qann_state_dict']
