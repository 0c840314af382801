"""The task-loss stage: the converted SNN trained end to end on the task's
own loss and labels.

Why: the layer groups and the joint stage pull the SNN towards the QANN,
layer by layer or at the outputs, but most of a deep layer's count
mismatch is inherited from earlier layers and differs from image to
image; what the SNN is finally judged on is the task. So, as in hybrid
conversion + spike-based training (Rathi et al., 2020), this stage trains
all weights on the task loss of the SNN itself:

- forward: the spiking path at the SNN's T (2^b - 1 by default), all
  steps folded into one pass, outputs averaged over T and handed to the
  head's stock loss through the wrapper's ``loss`` mode (allowed inside
  this stage only, :meth:`TimestepMixin.snn_loss_allowed`);
- backward: straight through every neuron, the *identity rate surrogate*:
  each step's output carries its input's gradient (d out_t / d in_t = 1),
  so the time-averaged output has the gradient of the time-averaged input
  (:func:`.joint_tuning.straight_through`); no backpropagation through
  the membrane over time;
- thresholds: ``'frozen'`` (as converted), or ``'learnable'``: each
  neuron's theta moves with the QuantReLU's own clip gradient applied to
  the rate r and mean input m (d r / d theta = (r - m) / theta for m in
  [0, theta], 1 above, 0 below), :class:`LearnableThresholds`.

The learning rate decays to zero over the stage (half a cosine); the
result is kept only if it helps on the judging batches: the metric rose,
or stayed while the held-out task loss fell (:mod:`.trial`).
"""
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from ...spiking.functional import repeat_steps
from ...spiking.run_state import neurons_of
from ...utils.modules import forward_hooks
from .finetune_trainer import reduce_over_ranks
from .joint_tuning import cosine_factor, straight_through
from .trial import Trial, keep_or_revert, whole_model_row

LABEL = 'all layers (task loss)'


def task_loss(model, data, training):
    """The summed task loss of the SNN ``model`` on one dataloader batch
    (the caller provides the surrogate for a gradient)."""
    data = model.data_preprocessor(data, training)
    with model.snn_loss_allowed():
        losses = model(**data, mode='loss')
    return model.parse_losses(losses)[0]


def heldout_task_loss(model, batches):
    """The task loss on held-out batches, averaged over batches and ranks."""
    with torch.no_grad():
        losses = [task_loss(model, b, False) for b in batches]
    return reduce_over_ranks(torch.stack(losses).mean())


class LearnableThresholds:
    """Each neuron's threshold as a parameter for the stage.

    The neurons read their ``theta`` buffer; within :meth:`gradient` each
    neuron's output gains ``(p - p.detach()) * g`` (zero in value), g the
    QuantReLU clip gradient at the rate and mean input (module docstring),
    and :meth:`write_back` puts the parameters into the buffers after
    every optimizer step.
    """

    def __init__(self, model):
        self.neurons = neurons_of(model)
        self.params = [nn.Parameter(n.theta.detach().clone())
                       for n in self.neurons]
        self.names = {m: n for n, m in model.named_modules()}

    @property
    def buffers(self):
        return [n.theta for n in self.neurons]

    @contextmanager
    def gradient(self):
        params = dict(zip(self.neurons, self.params))

        def make_hook(neuron):
            def hook(module, inputs, out):
                run = module.timestep_run
                steps, constant = run.view(inputs[0])
                mean_in = steps if constant else steps.mean(0)
                out_steps = run.steps_of(out)
                rate = out if out_steps is None else out_steps.mean(0)
                p = params[module]
                with torch.no_grad():
                    g = torch.where(
                        mean_in < 0, torch.zeros_like(mean_in),
                        torch.where(mean_in > p, torch.ones_like(mean_in),
                                    (rate - mean_in) / p))
                term = (p - p.detach()) * g
                if out_steps is not None:
                    term = repeat_steps(term, out_steps.shape[0])
                return out + term
            return hook
        with forward_hooks(self.neurons, make_hook):
            yield

    @torch.no_grad()
    def write_back(self):
        for n, p in zip(self.neurons, self.params):
            n.theta.copy_(p.detach().abs().clamp_min(1e-8))

    def changed(self, saved):
        return [self.names[n] for n, old in zip(self.neurons, saved)
                if not torch.equal(n.theta, old)]


class TaskLossStage:
    """Runs the task-loss stage once; see the module docstring."""

    def __init__(self, trainer, setup, settings):
        self.trainer = trainer
        self.setup = setup
        self.settings = settings

    def tune(self, k):
        """Run the stage (its data stream seeded by ``k``); its row."""
        s, model = self.setup, self.setup.model
        params = list(model.parameters())
        for p in params:
            p.requires_grad_(True)
        thresholds = LearnableThresholds(model) \
            if self.settings.task_thresholds == 'learnable' else None
        trial = Trial(params + (thresholds.buffers if thresholds else []))
        held = s.judging_batches[:self.settings.heldout_batches]
        before = heldout_task_loss(model, held)
        lr_now = self._train(k, params, thresholds)
        after = heldout_task_loss(model, held)
        measure = None if s.judge is None else (lambda: s.judge(model))
        verdict = keep_or_revert(trial, s.progress, measure, before, after,
                                 must_gain=True)
        self._log(before, after, verdict)
        row = whole_model_row(LABEL, k, lr_now, before, after, verdict,
                              trial.changed_names(model))
        return dict(row, thresholds=self.settings.task_thresholds,
                    thresholds_changed=thresholds.changed(
                        trial.saved[len(params):]) if thresholds else [])

    def _train(self, k, params, thresholds):
        """The stage's steps, lr following half a cosine to zero; returns
        the starting lr."""
        trainer, model = self.trainer, self.setup.model
        total = self.settings.task_iters
        optim = trainer.build_optim(self.settings.task_lr)
        tuned = list(params)
        if thresholds is not None:
            optim.optimizer.add_param_group(
                dict(params=thresholds.params, weight_decay=0.0))
            tuned += thresholds.params
        base = [g['lr'] for g in optim.optimizer.param_groups]
        stream = trainer.stream(k)
        head = f'[task] {LABEL} lr {base[0]:.1e}'
        T = model.snn_cfg['timesteps']
        for step in range(total):
            for g, lr in zip(optim.optimizer.param_groups, base):
                g['lr'] = lr * cosine_factor(step, total)
            with straight_through(model, T), (
                    thresholds.gradient() if thresholds else nullcontext()):
                loss = task_loss(model, next(stream), True)
            trainer.step(optim, loss, tuned, head, step, total)
            if thresholds is not None:
                thresholds.write_back()
        return base[0]

    def _log(self, before, after, v):
        line = (f'[task] {LABEL}: held-out task loss {before:.5f} -> '
                f'{after:.5f}')
        if v.metric_before is not None:
            line += (f', {self.setup.judge.metric_key} '
                     f'{v.metric_before:.4f} -> {v.metric_after:.4f}')
        line += ' (reverted: ' + v.reverted_by + ')' if not v.kept else \
            ' (kept)'
        self.trainer.runner.logger.info(line)
