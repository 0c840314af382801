"""Fast-SNN layer-wise fine-tuning as an mmengine train loop.

After conversion, what remains of the SNN/QANN gap is closed layer by layer,
shallow to deep: for spiking layer k, the already tuned SNN runs up to
neuron k, its firing rate (spike sum / T * theta) is pulled towards the
QANN's activation at the same place (MSE, see :mod:`.layer_targets`), and
only the weights feeding neuron k (convs, linears and BN affine terms
executed since neuron k-1) move. Thresholds stay frozen. A last group
tunes the layers after the final neuron against the QANN's outputs.

Per group the loop
1. trains once per learning rate in ``lr_candidates`` (each run from the
   same weights and the same batches) and keeps the run with the lowest
   held-out count mismatch (output group: MSE), or no change at all;
2. runs the task's own val evaluator (top-1, mAP, mIoU) on held-out val
   batches and reverts the group if the metric fell (``metric_check``), so
   the SNN never leaves fine-tuning scoring worse than it came in;
3. writes a progress checkpoint, from which ``--resume`` goes on with the
   next group (see :mod:`.finetune_progress`).

With ``joint_iters`` a last stage tunes all weights together against the
QANN's outputs, the gradient passing straight through every neuron (see
:mod:`.joint_tuning` for why one layer at a time cannot remove the
mismatch that deep layers inherit), judged by the task metric like a group.

Every group's data stream and random state are set from (seed, group), so
an interrupted and resumed run repeats an uninterrupted one. Under DDP each
rank tunes on its shard of the batch and gradients, held-out scores and
metrics are averaged over ranks, so every rank keeps the same weights.

Use as ``train_cfg = dict(type='LayerwiseFinetuneLoop', ...)`` with
``load_from`` a QANN checkpoint; the optimizer comes from ``optim_wrapper``
(``paramwise_cfg`` multipliers apply), its lr replaced by each candidate.
"""
import copy
import math
import os.path as osp
import time

import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop, set_random_seed

from ...analysis import collect_layer_stats
from ...errors import BadArgumentError
from ...registry import LOOPS
from ...utils.atomic import atomic_write
from .finetune_progress import (REPORT_FILE, find_resume_checkpoint,
                                load_progress, save_progress, write_json)
from .joint_tuning import cosine_factor, output_loss
from .layer_groups import assign_layer_groups
from .layer_targets import SURROGATES, layer_loss

METRIC_CHECKS = ('every', 'output', 'none')
#: metric names tried, in order, when ``metric_key`` is not given
_TASK_METRICS = ('top1', 'mAP', 'mIoU')


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _reduce(value, op='mean'):
    """A float averaged (or summed) over ranks; itself in one process."""
    t = torch.tensor([float(value)], dtype=torch.float64)
    all_reduce(t, op=op)  # in place; a no-op without a process group
    return t.item()


def _copy(params):
    """Detached copies of ``params``, to go back to with :func:`_put`."""
    return [p.detach().clone() for p in params]


@torch.no_grad()
def _put(params, values):
    for p, v in zip(params, values):
        p.copy_(v)


def _check_args(iters_per_layer, surrogate, metric_check, lr_candidates,
                joint_iters, joint_lr):
    """One error naming the ``train_cfg`` key and what it takes."""
    def bad(key, want, got):
        raise BadArgumentError(f'train_cfg.{key} must be {want}, got {got!r}:'
                               f' set train_cfg.{key} in the config or with '
                               '--cfg-options')

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if not isinstance(iters_per_layer, int) or iters_per_layer < 1:
        bad('iters_per_layer', 'an integer >= 1', iters_per_layer)
    if surrogate not in SURROGATES:
        bad('surrogate', f'one of {SURROGATES}', surrogate)
    if metric_check not in METRIC_CHECKS:
        bad('metric_check', f'one of {METRIC_CHECKS}', metric_check)
    if lr_candidates is not None and (
            not isinstance(lr_candidates, (list, tuple)) or not lr_candidates
            or not all(number(lr) and lr > 0 for lr in lr_candidates)):
        bad('lr_candidates', 'a non-empty list of positive learning rates',
            lr_candidates)
    if not isinstance(joint_iters, int) or joint_iters < 0:
        bad('joint_iters', 'an integer >= 0', joint_iters)
    if joint_lr is not None and not (number(joint_lr) and joint_lr > 0):
        bad('joint_lr', 'a positive learning rate or None', joint_lr)


def pick_metric(metrics, key=None):
    """The task metric in an evaluator's output (higher is better)."""
    if key is not None:
        if key not in metrics:
            raise KeyError(f'metric_key {key!r} is not among the evaluator '
                           f'metrics {sorted(metrics)}; set metric_key to '
                           'one of them')
        return key
    for want in _TASK_METRICS:
        for k in metrics:
            if k.split('/')[-1] == want:
                return k
    return next(iter(metrics))


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
        heldout_batches (int): val batches for the mismatch / MSE judge
            (from the val dataloader, or the train one without it).
        metric_check (str): when the task metric judges a group: 'every'
            group, only the 'output' group (plus a final check that reverts
            everything if the metric fell), or 'none'.
        metric_key (str | None): evaluator key of the task metric, higher
            is better. Defaults to the first of top1 / mAP / mIoU found.
        metric_batches (int | None): val batches for the metric judge;
            None: the whole val set.
        tune_output (bool): also tune the layers after the last neuron.
        joint_iters (int): steps of the joint stage after the groups (all
            weights, SNN outputs against the QANN's); 0: no joint stage.
        joint_lr (float | None): its starting learning rate (decays to 0
            over the stage); None: the optimizer's.
        evaluate (bool): run the val loop before and after (logged).
        log_interval (int): log every this many iterations.
    """

    def __init__(self, runner, dataloader, iters_per_layer=50, timesteps=None,
                 neuron='signed', lr_candidates=None, surrogate='identity',
                 keep_best=True, heldout_batches=2, metric_check='every',
                 metric_key=None, metric_batches=None, tune_output=True,
                 joint_iters=0, joint_lr=None, evaluate=True,
                 log_interval=10):
        super().__init__(runner, dataloader)
        _check_args(iters_per_layer=iters_per_layer, surrogate=surrogate,
                    metric_check=metric_check, lr_candidates=lr_candidates,
                    joint_iters=joint_iters, joint_lr=joint_lr)
        self.iters_per_layer = int(iters_per_layer)
        self.snn_kwargs = dict(timesteps=timesteps, neuron=neuron)
        self.lr_candidates = None if lr_candidates is None else [
            float(lr) for lr in lr_candidates]
        self.surrogate = surrogate
        self.keep_best = keep_best
        self.heldout_batches = int(heldout_batches)
        self.metric_check = metric_check
        self.metric_key = metric_key
        self.metric_batches = metric_batches
        self.tune_output = tune_output
        self.joint_iters = int(joint_iters)
        self.joint_lr = None if joint_lr is None else float(joint_lr)
        self.evaluate = evaluate
        self.log_interval = max(1, int(log_interval))
        self._iter = 0
        self._max_iters = self.iters_per_layer
        self.report = []
        self.layer_stats = {}
        self._all_val = None

    @property
    def iter(self):
        return self._iter

    @property
    def epoch(self):
        return 0

    @property
    def max_iters(self):
        return self._max_iters

    @property
    def max_epochs(self):
        return 1

    # -- data ------------------------------------------------------------
    def _has_val(self):
        cfg = self.runner.cfg
        return all(cfg.get(k) is not None for k in
                   ('val_dataloader', 'val_cfg', 'val_evaluator'))

    def _stream(self, group):
        """Train batches for one group, the same on every run and rank."""
        set_random_seed(self.runner.seed + group)
        sampler = getattr(self.dataloader, 'sampler', None)
        if hasattr(sampler, '_indices_of_rank'):
            # mmengine's InfiniteSampler makes its index generator once, and
            # closing an earlier group's iterator closes it for good; a
            # fresh one per group (seeded by the group) keeps the stream
            # infinite and repeatable. No public API does this.
            sampler.seed = self.runner.seed + group
            sampler.indices = sampler._indices_of_rank()
        elif hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(group)
        while True:
            empty = True
            for data in self.dataloader:
                empty = False
                yield data
            if empty:
                raise RuntimeError('the train dataloader yields no batches')

    def _inputs(self, model, data):
        data = model.data_preprocessor(data, False)
        return data['inputs'] if isinstance(data, dict) else data[0]

    # -- judges ------------------------------------------------------------
    def _heldout(self, snn, qann, name, batches, quant_relu):
        """Held-out (MSE, mismatch | None), averaged over batches and ranks."""
        with torch.no_grad():
            vals = [layer_loss(snn, qann, name, x, self.surrogate, quant_relu)
                    for x in batches]
        loss = _reduce(torch.stack([v[0] for v in vals]).mean())
        if name is None:
            return loss, None
        return loss, _reduce(torch.stack([v[1] for v in vals]).mean())

    def _metric(self, model, batches):
        """The task metric of the current SNN on held-out val batches."""
        evaluator = self.runner.val_loop.evaluator
        count = 0
        with torch.no_grad():
            for data in batches:
                outputs = model.val_step(data)
                evaluator.process(data_samples=outputs, data_batch=data)
                count += len(outputs)
        size = int(_reduce(count, op='sum'))
        if batches is self._all_val:  # as ValLoop: padding dropped
            size = len(self.runner.val_loop.dataloader.dataset)
        metrics = evaluator.evaluate(size)
        self.metric_key = pick_metric(metrics, self.metric_key)
        return float(metrics[self.metric_key])

    def _layer_stats(self, qann, snn, batches):
        """Per neuron layer: count mismatch against the QANN levels, and
        the part of it that came in with the layer's input (inherited)."""
        stats = collect_layer_stats(qann, snn, batches)
        return {r['layer']: (_reduce(r['mismatch']),
                             _reduce(r['inherited_mismatch']))
                for r in stats['layers']}

    # -- one group -----------------------------------------------------------
    def _build_optim(self, lr):
        cfg = copy.deepcopy(self.runner.cfg.optim_wrapper)
        if lr is not None:
            cfg.optimizer.lr = lr
        self.runner.optim_wrapper = self.runner.build_optim_wrapper(cfg)
        return self.runner.optim_wrapper

    def _step(self, optim, loss, params, head, step, total, clock,
              extra=''):
        """One optimizer step (gradients averaged over ranks) and, every
        ``log_interval`` steps, a progress line starting with ``head``."""
        optim.backward(loss)
        if get_world_size() > 1:
            for p in params:
                if p.grad is not None:
                    all_reduce(p.grad, op='mean')
        optim.step()
        optim.zero_grad()
        self._iter += 1
        self.runner.message_hub.update_scalar('train/loss', loss.item())
        if (step + 1) % self.log_interval == 0 or step + 1 == total:
            done = self._iter - clock[1]
            eta = (time.time() - clock[0]) / max(done, 1) * (
                self._max_iters - self._iter)
            self.runner.logger.info(
                f'{head} iter {step + 1}/{total} (total {self._iter}/'
                f'{self._max_iters}, eta {eta / 60:.1f} min): loss '
                f'{loss.item():.5f}{extra}')

    def _train_group(self, k, label, model, qann, name, params, lr,
                     quant_relu, clock):
        optim = self._build_optim(lr)
        stream = self._stream(k)
        head = (f'[{k + 1}/{self.n_groups}] {label} lr '
                f'{optim.get_lr()["lr"][0]:.1e}')
        for step in range(self.iters_per_layer):
            x = self._inputs(model, next(stream))
            loss, mm = layer_loss(model, qann, name, x, self.surrogate,
                                  quant_relu)
            self._step(optim, loss, params, head, step, self.iters_per_layer,
                       clock, '' if mm is None else
                       f', mismatch {mm.item():.4f}')

    def _tune_group(self, k, model, qann, name, params, held, metric_batches,
                    state, clock):
        label = name or 'output layers'
        quant_relu = None
        if name is not None and self.surrogate == 'clip':
            quant_relu = copy.deepcopy(qann.get_submodule(name))
        ids = {id(p) for p in params}
        for p in model.parameters():
            p.requires_grad_(id(p) in ids)
        saved = _copy(params)

        def score(res):  # lower is better
            return res[0] if res[1] is None else res[1]

        before = self._heldout(model, qann, name, held, quant_relu)
        best, best_res, best_lr, tried = None, before, None, []
        for lr in self.lr_candidates or [None]:
            _put(params, saved)
            self._train_group(k, label, model, qann, name, params, lr,
                              quant_relu, clock)
            res = self._heldout(model, qann, name, held, quant_relu)
            lr_used = self.runner.optim_wrapper.get_lr()['lr'][0]
            tried.append(dict(lr=lr_used, loss=res[0], mismatch=res[1]))
            better = score(res) < score(best_res) or (
                not self.keep_best and best is None)
            if better:
                best = _copy(params)
                best_res, best_lr = res, lr_used
        _put(params, best if best is not None else saved)
        reverted, why = best is None, 'held-out score' if best is None else ''

        metric_before = metric_after = state['metric']
        judge = self.metric_check == 'every' or (
            self.metric_check == 'output' and name is None)
        if judge and best is not None and metric_before is not None:
            metric_after = self._metric(model, metric_batches)
            if metric_after < metric_before:
                _put(params, saved)
                reverted, why = True, 'task metric'
            else:
                state['metric'] = metric_after
        changed = [n for n, p in model.named_parameters() if id(p) in ids
                   and not torch.equal(p.detach(), saved[[id(q) for q in params]
                                                        .index(id(p))])]
        row = dict(layer=label, index=k, lr=best_lr, tried=tried,
                   loss_before=before[0], loss_after=best_res[0]
                   if not reverted else before[0],
                   mismatch_before=before[1],
                   mismatch_after=best_res[1] if not reverted else before[1],
                   metric_before=metric_before, metric_after=metric_after,
                   reverted=reverted, reverted_by=why or None,
                   changed=changed)
        # a group the metric reverted: show what its training had reached
        shown = best_res if why == 'task metric' else (
            row['loss_after'], row['mismatch_after'])
        self.runner.logger.info(
            f'[{k + 1}/{self.n_groups}] {label}: held-out MSE '
            f'{before[0]:.5f} -> {shown[0]:.5f}' +
            ('' if before[1] is None else
             f', mismatch {before[1]:.4f} -> {shown[1]:.4f}') +
            ('' if metric_before is None or not judge else
             f', {self.metric_key} {metric_before:.4f} -> {metric_after:.4f}')
            + (f' (reverted: {why})' if reverted and tried else ''))
        return row

    def _tune_joint(self, k, model, qann, held, metric_batches, state,
                    clock):
        """All weights at once against the QANN's outputs (see
        :mod:`.joint_tuning`); kept only if the task metric (without a val
        set: the held-out output MSE) did not get worse."""
        label = 'all layers (joint)'
        params = list(model.parameters())
        for p in params:
            p.requires_grad_(True)
        saved = _copy(params)
        with torch.no_grad():
            before = _reduce(torch.stack(
                [output_loss(model, qann, x) for x in held]).mean())
        optim = self._build_optim(self.joint_lr)
        base = [g['lr'] for g in optim.optimizer.param_groups]
        lr_now = base[0]
        stream = self._stream(k)
        head = f'[joint] {label} lr {lr_now:.1e}'
        for step in range(self.joint_iters):
            for g, lr in zip(optim.optimizer.param_groups, base):
                g['lr'] = lr * cosine_factor(step, self.joint_iters)
            loss = output_loss(model, qann, self._inputs(model, next(stream)))
            self._step(optim, loss, params, head, step, self.joint_iters,
                       clock)
        with torch.no_grad():
            after = _reduce(torch.stack(
                [output_loss(model, qann, x) for x in held]).mean())
        metric_before = metric_after = state['metric']
        if metric_before is not None:
            metric_after = self._metric(model, metric_batches)
            worse = metric_after < metric_before
        else:
            worse = after > before
        if worse:
            _put(params, saved)
        elif metric_before is not None:
            state['metric'] = metric_after
        why = ('task metric' if metric_before is not None else
               'held-out score') if worse else None
        self.runner.logger.info(
            f'[joint] {label}: held-out output MSE {before:.5f} -> '
            f'{after:.5f}' + ('' if metric_before is None else
                              f', {self.metric_key} {metric_before:.4f} -> '
                              f'{metric_after:.4f}') +
            (f' (reverted: {why})' if worse else ''))
        return dict(layer=label, index=k, lr=lr_now,
                    tried=[dict(lr=lr_now, loss=after, mismatch=None)],
                    loss_before=before, loss_after=before if worse else after,
                    mismatch_before=None, mismatch_after=None,
                    metric_before=metric_before, metric_after=metric_after,
                    reverted=worse, reverted_by=why,
                    changed=[] if worse else [
                        n for n, _ in model.named_parameters()])

    # -- main --------------------------------------------------------------
    def run(self):
        runner = self.runner
        model = _unwrap(runner.model)
        if not hasattr(model, 'to_snn'):
            raise TypeError('LayerwiseFinetuneLoop needs a fastsnn_mm task model')
        resume_from = find_resume_checkpoint(runner)
        resumed = load_progress(resume_from) if resume_from else None
        runner.call_hook('before_train')
        model.eval()
        qann = copy.deepcopy(model)
        qann.snn_cfg, qann._pending_snn = None, None
        if resumed is not None:
            qann.load_state_dict(resumed[2])
        for p in qann.parameters():
            p.requires_grad_(False)
        model.to_snn(mode='folded', **self.snn_kwargs)
        if resumed is not None:
            model.load_state_dict(resumed[1])
        cfg = model.snn_cfg
        runner.logger.info(f'Layer-wise fine-tuning: T={cfg["timesteps"]}, '
                           f'neuron={cfg["neuron"]}, surrogate='
                           f'{self.surrogate}, lr candidates '
                           f'{self.lr_candidates or "(optimizer lr)"}, '
                           f'{self.iters_per_layer} iterations each' +
                           (f'; then {self.joint_iters} joint iterations'
                            if self.joint_iters else ''))
        has_val = self._has_val()
        if self.evaluate and has_val and resumed is None:
            runner.logger.info('SNN metric before fine-tuning: '
                               f'{runner.val_loop.run()}')

        held_loader = runner.val_loop.dataloader if has_val else self.dataloader
        n_metric = 0 if not has_val or self.metric_check == 'none' else (
            math.inf if self.metric_batches is None else self.metric_batches)
        raw = []
        for data in held_loader:
            if len(raw) >= max(self.heldout_batches, n_metric):
                break
            raw.append(data)
        held = [self._inputs(model, d) for d in raw[:self.heldout_batches]]
        metric_batches = raw if n_metric else None
        self._all_val = raw if n_metric == math.inf else None

        groups = assign_layer_groups(model, held[0])
        if not self.tune_output:
            groups = [g for g in groups if g[0] is not None]
        self.n_groups = len(groups)
        n_lrs = len(self.lr_candidates or [None])
        self._max_iters = sum(1 for g in groups if g[1]) * n_lrs * \
            self.iters_per_layer + self.joint_iters

        if resumed is not None:
            state = resumed[0]
            self.report = list(state['rows'])
            self._iter = state['iter']
            runner.logger.info(
                f'resuming layer-wise fine-tuning from {resume_from}: '
                f'{state["done"]} of {len(groups)} groups done')
        else:
            metric = self._metric(model, metric_batches) \
                if metric_batches else None
            # the QANN on the same batches: what the SNN is tuned towards
            metric_qann = self._metric(qann, metric_batches) \
                if metric_batches else None
            state = dict(done=0, iter=0, rows=[], metric=metric,
                         metric_initial=metric, metric_qann=metric_qann,
                         layers_before=self._layer_stats(qann, model, held))
        if state['metric_initial'] is not None:
            runner.logger.info(f'held-out {self.metric_key} before: '
                               f'{state["metric_initial"]:.4f} (QANN '
                               f'{state.get("metric_qann", float("nan")):.4f})')
        clock = (time.time(), self._iter)
        for k in range(state['done'], len(groups)):
            name, params = groups[k]
            if params:
                self.report.append(self._tune_group(
                    k, model, qann, name, params, held, metric_batches,
                    state, clock))
            state.update(done=k + 1, iter=self._iter, rows=self.report)
            save_progress(runner, model.state_dict(), qann.state_dict(),
                          state)
        if self.joint_iters and not state.get('joint_done'):
            self.report.append(self._tune_joint(
                len(groups), model, qann, held, metric_batches, state,
                clock))
            state.update(joint_done=True, iter=self._iter, rows=self.report)
            save_progress(runner, model.state_dict(), qann.state_dict(),
                          state)
        for p in model.parameters():
            p.requires_grad_(True)

        if self.metric_check == 'output' and metric_batches:
            final = self._metric(model, metric_batches)
            if final < state['metric_initial']:
                runner.logger.info(
                    f'held-out {self.metric_key} fell ({final:.4f} < '
                    f'{state["metric_initial"]:.4f}): all groups reverted')
                model.load_state_dict(qann.state_dict(), strict=False)
                final = state['metric_initial']
            state['metric'] = final
        self._finish(model, qann, held, state, cfg)
        runner.call_hook('after_train')
        if self.evaluate and has_val:
            runner.logger.info('SNN metric after fine-tuning: '
                               f'{runner.val_loop.run()}')
        return model

    def _finish(self, model, qann, held, state, cfg):
        """Per-layer mismatch before/after into the log and the JSON; the
        tuned SNN checkpoint into the work dir."""
        runner = self.runner
        nan = (float('nan'), float('nan'))
        before = state['layers_before']
        after = self._layer_stats(qann, model, held)
        self.layer_stats = dict(before={n: v[0] for n, v in before.items()},
                                after={n: v[0] for n, v in after.items()})
        lines = [f'  {name}: {before.get(name, nan)[0]:.4f} -> '
                 f'{after[name][0]:.4f} (inherited {before.get(name, nan)[1]:.4f}'
                 f' -> {after[name][1]:.4f})' for name in after]

        def mean(stats, i):
            return sum(v[i] for v in stats.values()) / max(len(stats), 1)
        mean_b, mean_a = mean(before, 0), mean(after, 0)
        runner.logger.info(
            'count mismatch per neuron layer (held-out), before -> after '
            '(in brackets: the part the layer\'s summed input already '
            'carried from earlier layers):\n' + '\n'.join(lines) +
            f'\n  mean: {mean_b:.4f} -> {mean_a:.4f} (inherited '
            f'{mean(before, 1):.4f} -> {mean(after, 1):.4f})')
        if state['metric_initial'] is not None:
            runner.logger.info(
                f'held-out {self.metric_key}: {state["metric_initial"]:.4f} '
                f'-> {state["metric"]:.4f} (QANN '
                f'{state.get("metric_qann", float("nan")):.4f})')
        write_json(osp.join(runner.work_dir, REPORT_FILE), dict(
            timesteps=cfg['timesteps'], neuron=cfg['neuron'],
            surrogate=self.surrogate, lr_candidates=self.lr_candidates,
            iters_per_layer=self.iters_per_layer,
            metric_key=self.metric_key,
            metric_qann=state.get('metric_qann'),
            metric_before=state['metric_initial'],
            metric_after=state['metric'],
            mean_mismatch_before=mean_b, mean_mismatch_after=mean_a,
            mean_inherited_before=mean(before, 1),
            mean_inherited_after=mean(after, 1),
            joint_iters=self.joint_iters, joint_lr=self.joint_lr,
            layers=[dict(layer=n, mismatch_before=before.get(n, nan)[0],
                         mismatch_after=after[n][0],
                         inherited_before=before.get(n, nan)[1],
                         inherited_after=after[n][1]) for n in after],
            groups=self.report))
        path = osp.join(runner.work_dir,
                        f'snn_finetuned_{cfg["neuron"]}_T{cfg["timesteps"]}.pth')
        if is_main_process():
            ckpt = dict(meta=dict(snn=cfg, layerwise=self.report),
                        state_dict={k: v.detach().cpu() for k, v in
                                    model.state_dict().items()})
            atomic_write(path, lambda f: torch.save(ckpt, f))
        runner.logger.info(f'saved fine-tuned SNN checkpoint to {path}')
