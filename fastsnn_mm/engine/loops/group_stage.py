"""One layer group of layer-wise fine-tuning.

For spiking layer k, the already tuned SNN runs up to neuron k, its firing
rate is pulled towards the QANN's activation at the same place (MSE, see
:mod:`.layer_targets`), and only the weights feeding neuron k (executed
since neuron k-1) move; the output group tunes the layers after the last
neuron against the QANN's outputs. The group trains once per learning
rate candidate, each from the same weights and batches, keeps the run with
the lowest held-out count mismatch (output group: MSE) or no change at
all, and then lets the task metric judge (see :mod:`.trial`).
"""
import copy
from dataclasses import dataclass, field
from typing import Optional

from .finetune_judges import heldout_layer_score
from .finetune_trainer import preprocess
from .layer_targets import layer_loss
from .trial import Trial, Verdict, keep_or_revert


@dataclass
class TuningSetup:
    """What every stage works on.

    Attributes:
        model: the SNN being tuned (unwrapped).
        qann: the frozen QANN it is compared with.
        held: held-out input tensors for the mismatch / MSE judge.
        judge: the task metric on the judging batches, or None.
        progress: the run's :class:`FinetuneProgress`.
        n_groups: groups in the run (for the progress lines).
        judging_batches: the judging dataloader batches (with labels).
    """

    model: object
    qann: object
    held: list
    judge: Optional[object]
    progress: object
    n_groups: int
    judging_batches: list = field(default_factory=list)


def _score(res):  # lower is better: the mismatch, or the MSE without one
    return res[0] if res[1] is None else res[1]


class GroupStage:
    """Tunes one layer group at a time (see the module docstring)."""

    def __init__(self, trainer, setup, settings):
        self.trainer = trainer
        self.setup = setup
        self.settings = settings

    def tune(self, k, name, params):
        """Tune group ``k`` (neuron ``name``, None: the output layers) and
        return its report row."""
        s, model = self.setup, self.setup.model
        quant_relu = None
        if name is not None and self.settings.surrogate == 'clip':
            quant_relu = copy.deepcopy(s.qann.get_submodule(name))
        ids = {id(p) for p in params}
        for p in model.parameters():
            p.requires_grad_(id(p) in ids)
        trial = Trial(params)
        before = self._heldout(name, quant_relu)
        best, best_res, best_lr, tried = self._best_candidate(
            k, name, params, trial, before, quant_relu)
        if best is None:
            trial.revert()
            verdict = Verdict(False, 'held-out score', s.progress.metric,
                              s.progress.metric)
        else:
            trial.put(best)
            verdict = keep_or_revert(trial, s.progress, self._judge_of(name))
        row = self._row(k, name, trial, before, best_res, best_lr, tried,
                        verdict)
        self._log(k, row, best_res, name)
        return row

    # -- pieces ------------------------------------------------------------
    def _heldout(self, name, quant_relu):
        s = self.setup
        return heldout_layer_score(s.model, s.qann, name, s.held,
                                   self.settings.surrogate, quant_relu)

    def _best_candidate(self, k, name, params, trial, before, quant_relu):
        """Train once per lr candidate from the same weights; the values
        of the best held-out run (None: none beat ``before``)."""
        best, best_res, best_lr, tried = None, before, None, []
        for lr in self.settings.candidates:
            trial.revert()
            self._train(k, name, params, lr, quant_relu)
            res = self._heldout(name, quant_relu)
            lr_used = self.trainer.runner.optim_wrapper.get_lr()['lr'][0]
            tried.append(dict(lr=lr_used, loss=res[0], mismatch=res[1]))
            if _score(res) < _score(best_res) or (
                    not self.settings.keep_best and best is None):
                best = trial.current()
                best_res, best_lr = res, lr_used
        return best, best_res, best_lr, tried

    def _train(self, k, name, params, lr, quant_relu):
        trainer, s = self.trainer, self.setup
        total = self.settings.iters_per_layer
        optim = trainer.build_optim(lr)
        stream = trainer.stream(k)
        head = (f'[{k + 1}/{s.n_groups}] {name or "output layers"} lr '
                f'{optim.get_lr()["lr"][0]:.1e}')
        for step in range(total):
            x = preprocess(s.model, next(stream))
            loss, mm = layer_loss(s.model, s.qann, name, x,
                                  self.settings.surrogate, quant_relu)
            trainer.step(optim, loss, params, head, step, total,
                         '' if mm is None else f', mismatch {mm.item():.4f}')

    def _judge_of(self, name):
        """The metric judge when it judges this group, else None."""
        check = self.settings.metric_check
        if check == 'every' or (check == 'output' and name is None):
            return lambda: self.setup.judge(self.setup.model)
        return None

    def _row(self, k, name, trial, before, best_res, best_lr, tried, v):
        reverted = not v.kept
        return dict(
            layer=name or 'output layers', index=k, lr=best_lr, tried=tried,
            loss_before=before[0],
            loss_after=before[0] if reverted else best_res[0],
            mismatch_before=before[1],
            mismatch_after=before[1] if reverted else best_res[1],
            metric_before=v.metric_before, metric_after=v.metric_after,
            reverted=reverted, reverted_by=v.reverted_by,
            changed=trial.changed_names(self.setup.model))

    def _log(self, k, row, best_res, name):
        """One line: held-out MSE (and mismatch, metric) before -> after;
        a group the metric reverted shows what its training had reached."""
        shown = best_res if row['reverted_by'] == 'task metric' else (
            row['loss_after'], row['mismatch_after'])
        judged = self._judge_of(name) is not None
        metric_key = self.setup.judge.metric_key if self.setup.judge else ''
        line = (f'[{k + 1}/{self.setup.n_groups}] {row["layer"]}: held-out '
                f'MSE {row["loss_before"]:.5f} -> {shown[0]:.5f}')
        if row['mismatch_before'] is not None:
            line += (f', mismatch {row["mismatch_before"]:.4f} -> '
                     f'{shown[1]:.4f}')
        if row['metric_before'] is not None and judged:
            line += (f', {metric_key} {row["metric_before"]:.4f} -> '
                     f'{row["metric_after"]:.4f}')
        if row['reverted'] and row['tried']:
            line += f' (reverted: {row["reverted_by"]})'
        self.trainer.runner.logger.info(line)
