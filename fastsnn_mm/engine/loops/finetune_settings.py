"""The ``train_cfg`` of :class:`LayerwiseFinetuneLoop`, checked once.

Every bad value ends in one :class:`BadArgumentError` that names the
``train_cfg`` key, what it takes and where to set it (``tools/train.py``
prints it as one line).
"""
from dataclasses import dataclass, fields
from typing import Optional, Sequence, Union

from ...errors import BadArgumentError
from .judging_data import JUDGE_SOURCES, REPORT_SPLITS
from .layer_targets import SURROGATES

METRIC_CHECKS = ('every', 'output', 'none')
#: the task-loss stage's thresholds: kept as converted, or tuned with it
THRESHOLDS = ('frozen', 'learnable')


def bad_setting(key, want, got):
    raise BadArgumentError(f'train_cfg.{key} must be {want}, got {got!r}:'
                           f' set train_cfg.{key} in the config or with '
                           '--cfg-options')


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _count(key, value, low):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        bad_setting(key, f'an integer >= {low}', value)
    return value


def _positive_or_none(key, value, what='a positive learning rate or None'):
    if value is not None and not (_number(value) and value > 0):
        bad_setting(key, what, value)
    return None if value is None else float(value)


@dataclass
class FinetuneSettings:
    """What the loop does; see :class:`LayerwiseFinetuneLoop` for each."""

    iters_per_layer: int = 50
    surrogate: str = 'identity'
    metric_check: str = 'every'
    lr_candidates: Optional[Sequence[float]] = None
    joint_iters: int = 0
    joint_lr: Optional[float] = None
    keep_best: bool = True
    heldout_batches: int = 2
    metric_key: Optional[str] = None
    metric_batches: Optional[int] = None
    tune_output: bool = True
    evaluate: bool = True
    log_interval: int = 10
    # which images judge, which report (see :mod:`.judging_data`)
    judge_on: Union[str, dict] = 'train_slice'
    judge_size: Union[int, float] = 0.2
    judge_seed: int = 0
    report_on: str = 'val'
    # also evaluate the reporting split after each stage (it judges
    # nothing: for the metric-vs-stage picture)
    report_stages: bool = False
    # the stages after conversion
    tune_groups: bool = True
    task_iters: int = 0
    task_lr: Optional[float] = None
    task_thresholds: str = 'frozen'

    def __post_init__(self):
        if not isinstance(self.iters_per_layer, int) or \
                self.iters_per_layer < 1:
            bad_setting('iters_per_layer', 'an integer >= 1',
                        self.iters_per_layer)
        if self.surrogate not in SURROGATES:
            bad_setting('surrogate', f'one of {SURROGATES}', self.surrogate)
        if self.metric_check not in METRIC_CHECKS:
            bad_setting('metric_check', f'one of {METRIC_CHECKS}',
                        self.metric_check)
        lrs = self.lr_candidates
        if lrs is not None and (
                not isinstance(lrs, (list, tuple)) or not lrs
                or not all(_number(lr) and lr > 0 for lr in lrs)):
            bad_setting('lr_candidates',
                        'a non-empty list of positive learning rates', lrs)
        self.lr_candidates = None if lrs is None else [float(v) for v in lrs]
        if not isinstance(self.joint_iters, int) or self.joint_iters < 0:
            bad_setting('joint_iters', 'an integer >= 0', self.joint_iters)
        self.joint_lr = _positive_or_none('joint_lr', self.joint_lr)
        self._check_judging()
        _count('task_iters', self.task_iters, 0)
        self.task_lr = _positive_or_none('task_lr', self.task_lr)
        if self.task_thresholds not in THRESHOLDS:
            bad_setting('task_thresholds', f'one of {THRESHOLDS}',
                        self.task_thresholds)
        self.heldout_batches = int(self.heldout_batches)
        self.log_interval = max(1, int(self.log_interval))

    def _check_judging(self):
        if not isinstance(self.judge_on, dict) and \
                self.judge_on not in JUDGE_SOURCES:
            bad_setting('judge_on', f'one of {JUDGE_SOURCES} or a '
                        'dataloader config (dict)', self.judge_on)
        size = self.judge_size
        if not (isinstance(size, float) and 0 < size < 1) and not (
                isinstance(size, int) and not isinstance(size, bool)
                and size >= 1):
            bad_setting('judge_size', 'a count of images >= 1 or a '
                        'fraction in (0, 1)', size)
        _count('judge_seed', self.judge_seed, 0)
        if self.report_on not in REPORT_SPLITS:
            bad_setting('report_on', f'one of {REPORT_SPLITS}',
                        self.report_on)

    @property
    def judges_report_split(self):
        """True when the reported split also judged (the old way)."""
        return self.judge_on == self.report_on

    @property
    def report_note(self):
        return 'it also judged' if self.judges_report_split else \
            'untouched by tuning'

    def describe(self, snn_cfg):
        """The run's first log line: the SNN and the stages."""
        return (f'Layer-wise fine-tuning: T={snn_cfg["timesteps"]}, '
                f'neuron={snn_cfg["neuron"]}, surrogate={self.surrogate}, '
                f'lr candidates {self.lr_candidates or "(optimizer lr)"}, '
                f'{self.iters_per_layer} iterations each' +
                ('' if self.tune_groups else ' (groups skipped)') +
                (f'; then {self.joint_iters} joint iterations'
                 if self.joint_iters else '') +
                (f'; then {self.task_iters} task-loss iterations, '
                 f'thresholds {self.task_thresholds}'
                 if self.task_iters else ''))

    @classmethod
    def from_config(cls, cfg):
        """Settings from ``train_cfg``'s keys; an unknown key is refused
        with the list of known ones (a typo would else go unnoticed)."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise BadArgumentError(
                f'train_cfg has unknown key(s) {", ".join(unknown)} for '
                f'LayerwiseFinetuneLoop: it takes timesteps, neuron, '
                f'{", ".join(known)}')
        return cls(**cfg)

    @property
    def candidates(self):
        """The learning rates each group tries (None: the optimizer's)."""
        return self.lr_candidates or [None]
