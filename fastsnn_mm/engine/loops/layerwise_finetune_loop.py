"""Fast-SNN layer-wise fine-tuning as an mmengine train loop.

After conversion, what remains of the SNN/QANN gap is closed in stages,
each kept only if the task metric on the judging images did not fall
(:mod:`.trial`), each followed by a progress checkpoint from which
``--resume`` goes on (:mod:`.finetune_progress`):

1. layer groups, shallow to deep (:mod:`.group_stage`): per spiking layer
   the weights feeding it are tuned so that its firing rate follows the
   QANN's activation, once per learning rate in ``lr_candidates``; the run
   with the lowest held-out count mismatch is kept, or no change at all;
2. with ``joint_iters``, all weights at once against the QANN's outputs
   (:mod:`.joint_stage`);
3. with ``task_iters``, all weights (and, if asked, the thresholds) on the
   task's own loss, the SNN spiking at T (:mod:`.task_loss_stage`).

The judging images are a slice of the training data that tuning never
draws, and the run reports the stock evaluator's metrics before and after
on the val (or test) split, which judged nothing (:mod:`.judging_data`;
``judge_on='val'`` restores the old way, judging on what it reports). The
QANN is tested on that split too, once, and each report of the SNN comes
with its tuned - untuned and SNN - QANN differences and their 95 % paired
bootstrap intervals over the split's images (:mod:`.finetune_report`).
Streams and random states are set per stage, and under DDP every measure
is averaged over ranks (:mod:`.finetune_trainer`), so resumed and
multi-process runs repeat a single uninterrupted one.

Use as ``train_cfg = dict(type='LayerwiseFinetuneLoop', ...)`` with
``load_from`` a QANN checkpoint; the optimizer comes from ``optim_wrapper``
(``paramwise_cfg`` multipliers apply), its lr replaced by each stage's.
"""
import math
import time

from mmengine.runner import BaseLoop

from ...registry import LOOPS
from ...utils.modules import unwrap_model
from .finetune_judges import AgreementJudge, MetricJudge, layer_mismatch
from .finetune_progress import FinetuneProgress, find_resume_checkpoint
from .finetune_report import (
    add_seconds,
    keep_report,
    report_split,
    write_report,
)
from .finetune_settings import FinetuneSettings
from .finetune_trainer import StageTrainer, preprocess
from .group_stage import GroupStage, TuningSetup
from .joint_stage import JointStage
from .judging_data import (
    LABEL_FREE,
    carve_judging_slice,
    describe_judging,
    judging_source,
)
from .layer_groups import assign_layer_groups
from .task_loss_stage import TaskLossStage


@LOOPS.register_module()
class LayerwiseFinetuneLoop(BaseLoop):
    """Tune a converted SNN layer by layer against its QANN.

    Args:
        runner: the runner; dataloader: train data (inputs only are used).
        iters_per_layer (int): optimizer steps per layer group and lr.
        timesteps (int | None): T of the SNN (default 2^b - 1).
        neuron (str): 'signed' or 'unsigned'.
        lr_candidates (list[float] | None): learning rates tried per group
            (the best held-out result is kept). Defaults to the optimizer's
            configured lr only.
        surrogate (str): gradient of the rate, 'identity' or 'clip' (see
            :mod:`.layer_targets`). Defaults to 'identity'.
        keep_best (bool): keep a group's change only if its held-out count
            mismatch (output group: MSE) fell.
        heldout_batches (int): judging batches for the mismatch / MSE judge.
        metric_check (str): when the task metric judges a group: 'every'
            group, only the 'output' group (plus a final check that reverts
            everything if the metric fell), or 'none'.
        metric_key (str | None): evaluator key of the task metric, higher
            is better. Defaults to the first of top1 / mAP / mIoU found.
        metric_batches (int | None): judging batches for the metric judge;
            None: all of them.
        tune_output (bool): also tune the layers after the last neuron.
        joint_iters (int): steps of the joint stage after the groups (all
            weights, SNN outputs against the QANN's); 0: no joint stage.
        joint_lr (float | None): its starting learning rate (decays to 0
            over the stage); None: the optimizer's.
        judge_on (str | dict): where the judging images come from:
            'train_slice' (default), 'val', 'test', 'val_agreement' (the
            val images without labels, judged by SNN-QANN output
            agreement), or a dataloader config (see :mod:`.judging_data`).
        judge_size (int | float): images of the training data held out to
            judge (a count, or a fraction in (0, 1)). Defaults to 0.2.
        judge_seed (int): seed of that draw. Defaults to 0.
        report_on (str): 'val' or 'test', the split reported before and
            after with the stock evaluator. Defaults to 'val'.
        evaluate (bool): run that report (logged and in the JSON).
        tune_groups (bool): run the layer groups (False: go straight to the
            joint / task-loss stages).
        task_iters (int): steps of the task-loss stage; 0: none.
        task_lr (float | None): its starting learning rate (decays to 0);
            None: the optimizer's.
        task_thresholds (str): 'frozen' or 'learnable' in that stage.
        log_interval (int): log every this many iterations.
    """

    def __init__(self, runner, dataloader, timesteps=None, neuron='signed',
                 **settings):
        self.settings = FinetuneSettings.from_config(settings)
        self._carved = None
        if self.settings.judge_on == 'train_slice':
            # tuning never draws the held-out slice that judges it
            dataloader, judge_cfg, described = carve_judging_slice(
                dataloader, runner.cfg.get('val_dataloader'),
                self.settings.judge_size, self.settings.judge_seed)
            self._carved = (judge_cfg, described)
        super().__init__(runner, dataloader)
        self.snn_kwargs = dict(timesteps=timesteps, neuron=neuron)
        self.trainer = StageTrainer(runner, self.dataloader,
                                    self.settings.log_interval)
        self.report = []
        self.layer_stats = {}
        self.judged_on = None
        self._resumed_from = None

    @property
    def iter(self):
        return self.trainer.iter

    @property
    def epoch(self):
        return 0

    @property
    def max_iters(self):
        return self.trainer.max_iters or self.settings.iters_per_layer

    @property
    def max_epochs(self):
        return 1

    # -- main --------------------------------------------------------------
    def run(self):
        model, qann, saved = self._models()
        self.runner.logger.info(self.settings.describe(model.snn_cfg))
        pending = FinetuneProgress()  # what the reports before tuning keep
        if saved is None:
            pending.reported_qann = self._report_split(
                'before', pending, 'qann', qann)
            pending.reported_before = self._report_split(
                'before', pending, 'before')
        held, raw, judge = self._judging_data(model, qann)
        groups = self._groups(model, held)
        if saved is not None:
            progress = saved.progress
        else:
            progress = self._first_progress(model, qann, held, judge)
            for name in ('reported_qann', 'reported_before',
                         'report_records', 'reported_intervals'):
                setattr(progress, name, getattr(pending, name))
        setup = TuningSetup(model, qann, held, judge, progress, len(groups),
                            raw)
        self._tune(setup, groups)
        self._final_check(setup)
        self._finish(setup, self._report_split('after', setup.progress,
                                               'after'))
        self.runner.call_hook('after_train')
        return model

    # -- steps of run() ----------------------------------------------------
    def _models(self):
        """(SNN to tune, frozen QANN, saved progress | None), both models
        restored from a progress checkpoint on ``--resume``."""
        runner = self.runner
        model = unwrap_model(runner.model)
        if not hasattr(model, 'to_snn'):
            raise TypeError('LayerwiseFinetuneLoop needs a fastsnn_mm task '
                            'model')
        resume_from = find_resume_checkpoint(runner)
        saved = FinetuneProgress.load(resume_from) if resume_from else None
        runner.call_hook('before_train')
        model.eval()
        qann = model.qann_copy()
        if saved is not None:
            qann.load_state_dict(saved.qann_state)
        for p in qann.parameters():
            p.requires_grad_(False)
        model.to_snn(mode='folded', **self.snn_kwargs)
        if saved is not None:
            model.load_state_dict(saved.snn_state)
            self._resumed_from = resume_from
        return model, qann, saved

    def _report_split(self, when, progress, label, qann=None):
        """The stock evaluator's metrics on the reporting split (logged),
        or None when ``evaluate`` is off or the split is not configured.

        The SNN's, or with ``qann`` that model's. The per-image records
        and the intervals they give go into ``progress`` under ``label``
        ('qann', 'before', a stage, 'after'; see :func:`keep_report`).
        """
        s = self.settings
        if not s.evaluate:
            return None
        started = time.perf_counter()
        metrics, records, seconds = report_split(self.runner, s.report_on,
                                                 qann)
        if metrics is None:
            return None
        if qann is not None:
            add_seconds(progress.report_records, 'qann_test',
                        time.perf_counter() - started - seconds)
        self.runner.logger.info(
            f'{"QANN" if qann is not None else "SNN"} metric {when} '
            f'fine-tuning ({s.report_on} split, {s.report_note}): {metrics}')
        keep_report(progress, label, records, seconds)
        return metrics

    def _judging_data(self, model, qann):
        """(held-out inputs for the mismatch / MSE judge, the raw judging
        batches, the judge: task metric, SNN-QANN agreement or None)."""
        s = self.settings
        loader, evaluator, self.judged_on = judging_source(
            self.runner, s.judge_on, self.dataloader, self._carved)
        self.runner.logger.info(
            f'judging on {describe_judging(self.judged_on)}; reporting on '
            f'the {s.report_on} split ({s.report_note})')
        label_free = s.judge_on in LABEL_FREE
        n_metric = 0 if (evaluator is None and not label_free) or \
            s.metric_check == 'none' else (
                math.inf if s.metric_batches is None else s.metric_batches)
        raw = []
        for data in loader:
            if len(raw) >= max(s.heldout_batches, n_metric):
                break
            raw.append(data)
        held = [preprocess(model, d) for d in raw[:s.heldout_batches]]
        if not n_metric:
            return held, raw, None
        if label_free:  # the held-out inputs are its first batches
            rest = [preprocess(model, d) for d in raw[len(held):]]
            return held, raw, AgreementJudge(qann, held + rest)
        # all judging batches: evaluated at the dataset's size, as ValLoop
        size = len(loader.dataset) if n_metric == math.inf else None
        return held, raw, MetricJudge(evaluator, raw, size, s.metric_key)

    def _groups(self, model, held):
        """The layer groups in execution order; sets the step budget."""
        groups = assign_layer_groups(model, held[0])
        if not self.settings.tune_output:
            groups = [g for g in groups if g[0] is not None]
        s = self.settings
        tuned = sum(1 for g in groups if g[1]) if s.tune_groups else 0
        self.trainer.max_iters = tuned * len(s.candidates) * \
            s.iters_per_layer + s.joint_iters + s.task_iters
        return groups

    def _first_progress(self, model, qann, held, judge):
        """The progress of a fresh run: metrics and mismatch before."""
        metric = judge(model) if judge else None
        # the QANN on the same batches: what the SNN is tuned towards
        metric_qann = judge(qann) if judge else None
        return FinetuneProgress(
            metric=metric, metric_initial=metric, metric_qann=metric_qann,
            layers_before=layer_mismatch(qann, model, held))

    def _tune(self, setup, groups):
        """The stages not done yet, in order: the layer groups, the joint
        stage, the task-loss stage; progress saved after each."""
        progress, trainer = setup.progress, self.trainer
        self.report = progress.rows
        trainer.iter = progress.iter
        if self._resumed_from:
            self.runner.logger.info(
                f'resuming layer-wise fine-tuning from {self._resumed_from}'
                f': {progress.done} of {len(groups)} groups done')
        if progress.metric_initial is not None:
            self.runner.logger.info(
                f'held-out {setup.judge.metric_key} before: '
                f'{progress.metric_initial:.4f} (QANN '
                f'{progress.metric_qann:.4f})')
        trainer.start_clock()
        s = self.settings
        stage = GroupStage(trainer, setup, s)
        todo = range(progress.done, len(groups) if s.tune_groups else 0)
        for k in todo:
            name, params = groups[k]
            started = time.perf_counter()
            if params:
                progress.rows.append(stage.tune(k, name, params))
            progress.done, progress.iter = k + 1, trainer.iter
            self._stage_done(setup, 'groups', started,
                             report=k == len(groups) - 1)
        # each later stage seeds its data stream with its own index
        if s.joint_iters and not progress.joint_done:
            started = time.perf_counter()
            joint = JointStage(trainer, setup, s)
            progress.rows.append(joint.tune(len(groups)))
            progress.joint_done, progress.iter = True, trainer.iter
            self._stage_done(setup, 'joint', started)
        if s.task_iters and not progress.task_done:
            started = time.perf_counter()
            task = TaskLossStage(trainer, setup, s)
            progress.rows.append(task.tune(len(groups) + 1))
            progress.task_done, progress.iter = True, trainer.iter
            self._stage_done(setup, 'task', started)
        for p in setup.model.parameters():
            p.requires_grad_(True)

    def _stage_done(self, setup, stage, started, report=True):
        """Count the stage's wall time, evaluate the reporting split after
        it when ``report_stages`` (it judges nothing), save progress."""
        progress = setup.progress
        progress.stage_seconds[stage] = progress.stage_seconds.get(
            stage, 0.0) + time.perf_counter() - started
        if report and self.settings.report_stages:
            progress.reported_stages[stage] = self._report_split(
                f'after the {stage} stage', progress, stage)
        self._save(setup)

    def _save(self, setup):
        setup.progress.save(self.runner, setup.model.state_dict(),
                            setup.qann.state_dict())

    def _final_check(self, setup):
        """metric_check='output': revert everything if the judging metric
        ended below where it started."""
        progress, judge = setup.progress, setup.judge
        if self.settings.metric_check != 'output' or judge is None:
            return
        final = judge(setup.model)
        if final < progress.metric_initial:
            self.runner.logger.info(
                f'held-out {judge.metric_key} fell ({final:.4f} < '
                f'{progress.metric_initial:.4f}): all groups reverted')
            setup.model.load_state_dict(setup.qann.state_dict(),
                                        strict=False)
            final = progress.metric_initial
        progress.metric = final

    def _finish(self, setup, reported_after):
        """Per-layer mismatch after; the report and checkpoint written."""
        s, progress = self.settings, setup.progress
        after = layer_mismatch(setup.qann, setup.model, setup.held)
        self.layer_stats = dict(
            before={n: v[0] for n, v in progress.layers_before.items()},
            after={n: v[0] for n, v in after.items()})
        reported = None if reported_after is None else dict(
            split=s.report_on, untouched=not s.judges_report_split,
            qann=progress.reported_qann, before=progress.reported_before,
            after=reported_after)
        key = setup.judge.metric_key if setup.judge else s.metric_key
        write_report(self.runner, setup.model, s, progress, key, after,
                     extra=dict(judged_on=self.judged_on, reported_on=reported,
                                reported_stages=progress.reported_stages,
                                stage_seconds=progress.stage_seconds,
                                tune_groups=s.tune_groups,
                                task_iters=s.task_iters, task_lr=s.task_lr,
                                task_thresholds=s.task_thresholds))
