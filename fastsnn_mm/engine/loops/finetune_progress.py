"""Where layer-wise fine-tuning keeps its progress, so a killed run resumes
at the stage it had reached.

After every layer group (and after each later stage) the loop writes one
checkpoint in the work dir (``layerwise_progress.pth``): the tuned SNN
weights as ``state_dict``, the untouched QANN the layers are matched against
as ``qann_state_dict``, and under ``meta['layerwise']`` the
:class:`FinetuneProgress` as a plain dict. It is a regular mmengine
checkpoint (``meta``, ``message_hub``) named in ``last_checkpoint``, so
``tools/train.py --resume`` finds it the way it finds any other. Files are
written to a temporary name and renamed: a kill leaves the previous file
whole.
"""
import json
import os.path as osp
import time
from dataclasses import asdict, dataclass, field, fields
from typing import NamedTuple, Optional

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


def _on_cpu(state):
    return {k: v.detach().cpu() for k, v in state.items()}


@dataclass
class FinetuneProgress:
    """How far a fine-tuning run got, and what it measured on the way.

    Attributes:
        done: layer groups finished.
        iter: optimizer steps taken so far (all stages).
        rows: the report, one dict per finished group or stage.
        metric: the judging metric of the SNN as it stands now (None
            without a metric judge).
        metric_initial: that metric before fine-tuning.
        metric_qann: the QANN's on the same judging batches.
        layers_before: neuron layer -> (count mismatch, inherited part) of
            the SNN before fine-tuning, on the held-out batches.
        joint_done: the joint stage has run.
        task_done: the task-loss stage has run.
        reported_before: the stock evaluator's metrics on the reporting
            split before fine-tuning (None: not evaluated).
        reported_stages: stage ('groups', 'joint', 'task') -> those
            metrics after it (``report_stages=True``).
        stage_seconds: stage -> wall seconds spent in it (summed over
            resumed runs).
        reported_qann: the QANN's metrics on the reporting split, tested
            once before fine-tuning beside the SNN (None: not evaluated).
        report_records: per-image records of the reporting split kept for
            paired intervals: ``'qann'`` and ``'before'`` (the untuned
            SNN) -> {metric key: plain records}, and ``'seconds'`` -> what
            keeping and resampling them cost (see
            :mod:`.finetune_report`; plain dicts of numpy arrays, which
            the safe checkpoint loader reads back).
        reported_intervals: 'before' / stage / 'after' -> metric key ->
            the tuned - untuned and SNN - QANN differences on the
            reporting split with their 95 % paired bootstrap intervals.
    """

    done: int = 0
    iter: int = 0
    rows: list = field(default_factory=list)
    metric: Optional[float] = None
    metric_initial: Optional[float] = None
    metric_qann: Optional[float] = None
    layers_before: dict = field(default_factory=dict)
    joint_done: bool = False
    task_done: bool = False
    reported_before: Optional[dict] = None
    reported_stages: dict = field(default_factory=dict)
    stage_seconds: dict = field(default_factory=dict)
    reported_qann: Optional[dict] = None
    report_records: dict = field(default_factory=dict)
    reported_intervals: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data):
        """Read what :meth:`save` wrote, also by older versions (a plain
        dict without the later stages' fields)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, runner, snn_state, qann_state):
        """Write the progress checkpoint; point ``last_checkpoint`` at it."""
        if not is_main_process():
            return
        ckpt = dict(
            meta=dict(epoch=0, iter=self.iter, seed=runner.seed,
                      experiment_name=runner.experiment_name,
                      time=time.strftime('%Y%m%d_%H%M%S', time.localtime()),
                      layerwise=asdict(self)),
            state_dict=_on_cpu(snn_state),
            qann_state_dict=_on_cpu(qann_state),
            message_hub=runner.message_hub.state_dict())
        path = osp.join(runner.work_dir, PROGRESS_FILE)
        atomic_write(path, lambda f: torch.save(ckpt, f))
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'),
                     lambda f: f.write(path.encode()))

    @classmethod
    def load(cls, path):
        """The :class:`SavedProgress` in ``path``; None when ``path`` is
        another kind of checkpoint (a QANN to start from)."""
        ckpt = load_checkpoint_file(path, map_location='cpu')
        data = ckpt.get('meta', {}).get('layerwise')
        if data is None or 'qann_state_dict' not in ckpt:
            return None
        return SavedProgress(cls.from_dict(data), ckpt['state_dict'],
                             ckpt['qann_state_dict'])


class SavedProgress(NamedTuple):
    """A progress checkpoint as read back."""
    progress: FinetuneProgress
    snn_state: dict
    qann_state: dict


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
