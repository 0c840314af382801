"""The joint stage: all weights at once against the QANN's outputs, the
gradient straight through every neuron (why: :mod:`.joint_tuning`), the
learning rate decaying to zero; kept only if the task metric (without a
metric judge: the held-out output MSE) did not get worse."""
from .finetune_judges import heldout_output_loss
from .finetune_trainer import preprocess
from .joint_tuning import cosine_factor, output_loss
from .trial import Trial, keep_or_revert, whole_model_row

LABEL = 'all layers (joint)'


class JointStage:
    """Runs the joint stage once; see the module docstring."""

    def __init__(self, trainer, setup, settings):
        self.trainer = trainer
        self.setup = setup
        self.settings = settings

    def tune(self, k):
        """Run the stage (its data stream seeded by ``k``); its row."""
        s = self.setup
        params = list(s.model.parameters())
        for p in params:
            p.requires_grad_(True)
        trial = Trial(params)
        before = heldout_output_loss(s.model, s.qann, s.held)
        lr_now = self._train(k, params)
        after = heldout_output_loss(s.model, s.qann, s.held)
        measure = None if s.judge is None else (lambda: s.judge(s.model))
        verdict = keep_or_revert(trial, s.progress, measure, before, after)
        self._log(before, after, verdict)
        changed = [n for n, _ in s.model.named_parameters()] \
            if verdict.kept else []
        return whole_model_row(LABEL, k, lr_now, before, after, verdict,
                               changed)

    def _train(self, k, params):
        """The stage's steps, lr following half a cosine to zero; returns
        the starting lr."""
        trainer, s = self.trainer, self.setup
        total = self.settings.joint_iters
        optim = trainer.build_optim(self.settings.joint_lr)
        base = [g['lr'] for g in optim.optimizer.param_groups]
        stream = trainer.stream(k)
        head = f'[joint] {LABEL} lr {base[0]:.1e}'
        for step in range(total):
            for g, lr in zip(optim.optimizer.param_groups, base):
                g['lr'] = lr * cosine_factor(step, total)
            loss = output_loss(s.model, s.qann,
                               preprocess(s.model, next(stream)))
            trainer.step(optim, loss, params, head, step, total)
        return base[0]

    def _log(self, before, after, v):
        line = f'[joint] {LABEL}: held-out output MSE {before:.5f} -> ' \
               f'{after:.5f}'
        if v.metric_before is not None:
            line += (f', {self.setup.judge.metric_key} '
                     f'{v.metric_before:.4f} -> {v.metric_after:.4f}')
        if not v.kept:
            line += f' (reverted: {v.reverted_by})'
        self.trainer.runner.logger.info(line)
