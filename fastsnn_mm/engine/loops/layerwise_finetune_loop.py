"""Fast-SNN layer-wise fine-tuning as an mmengine train loop.

After conversion, what remains of the SNN/QANN gap is closed layer by layer,
shallow to deep: for spiking layer k, the already tuned SNN runs up to
neuron k, its firing rate (spike sum / T * theta) is pulled towards the
QANN's activation at the same place (MSE), and only the weights feeding
neuron k (convs, linears and BN affine terms executed since neuron k-1)
move. Spikes have no gradient, so the rate is made differentiable by a
straight-through surrogate: the frozen QANN activation applied to the
layer's time-averaged input, carrying the SNN's rate as its value.
Thresholds stay frozen. A last group tunes the layers after the final
neuron against the QANN's outputs.

Use as ``train_cfg = dict(type='LayerwiseFinetuneLoop', ...)`` with
``load_from`` a QANN checkpoint; the optimizer comes from ``optim_wrapper``
(``paramwise_cfg`` multipliers apply), by default SGD lr 1e-3, momentum 0.9.
"""
import copy
import os.path as osp

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop, save_checkpoint

from ...quantization import QuantReLU
from ...registry import LOOPS
from ...spiking import IFNeuron
from ...spiking.runner import timestep_context
from .layer_groups import assign_layer_groups


class _Stop(Exception):
    """Carries an activation out of a forward pass that need not go on."""

    def __init__(self, value):
        super().__init__()
        self.value = value


def _time_mean(t, T, B):
    return t.reshape(T, B, *t.shape[1:]).mean(0) if t.shape[0] == T * B else t


def _flatten(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flatten(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _flatten(o)]
    return []


@LOOPS.register_module()
class LayerwiseFinetuneLoop(BaseLoop):
    """Tune a converted SNN layer by layer against its QANN.

    Args:
        runner: the runner; dataloader: train data (inputs only are used).
        iters_per_layer (int): optimizer steps per spiking layer.
        timesteps (int | None): T of the SNN (default 2^b - 1).
        neuron (str): 'signed' or 'unsigned'.
        keep_best (bool): revert a layer whose held-out MSE or mismatch
            (fraction of spike counts off the QANN level) got worse.
        heldout_batches (int): validation batches for the keep-best check
            (taken from the val dataloader, or the train one without it).
        tune_output (bool): also tune the layers after the last neuron.
        evaluate (bool): run the val loop before and after (metric printed).
    """

    def __init__(self, runner, dataloader, iters_per_layer=50, timesteps=None,
                 neuron='signed', keep_best=True, heldout_batches=2,
                 tune_output=True, evaluate=True):
        super().__init__(runner, dataloader)
        if int(iters_per_layer) < 1:
            raise ValueError(f'iters_per_layer must be >= 1, got {iters_per_layer}')
        self.iters_per_layer = int(iters_per_layer)
        self.snn_kwargs = dict(timesteps=timesteps, neuron=neuron)
        self.keep_best = keep_best
        self.heldout_batches = heldout_batches
        self.tune_output = tune_output
        self.evaluate = evaluate
        self._iter = 0
        self.report = []

    @property
    def iter(self):
        return self._iter

    @property
    def epoch(self):
        return 0

    @property
    def max_iters(self):
        return self.iters_per_layer  # per layer; the total depends on depth

    @property
    def max_epochs(self):
        return 1

    # -- data ------------------------------------------------------------
    def _batches(self, loader):
        while True:
            for data in loader:
                yield data

    def _inputs(self, model, data):
        data = model.data_preprocessor(data, False)
        return data['inputs'] if isinstance(data, dict) else data[0]

    # -- forward pieces ---------------------------------------------------
    def _qann_target(self, qann, name, x):
        """QANN activation at QuantReLU ``name`` (None: the path output)."""
        with torch.no_grad():
            if name is None:
                return _flatten(qann.spiking_path(x))
            mod = qann.get_submodule(name)

            def grab(m, i, o):
                raise _Stop(o)
            h = mod.register_forward_hook(grab)
            try:
                qann.spiking_path(x)
            except _Stop as s:
                return [s.value]
            finally:
                h.remove()
        raise RuntimeError(f'QANN layer {name} was not reached')

    def _snn_rate(self, snn, name, surrogate, x):
        """SNN firing rate at neuron ``name`` with a straight-through
        gradient through ``surrogate`` (a frozen copy of the QuantReLU)."""
        T = snn.snn_cfg['timesteps']
        B = x.shape[0]
        with timestep_context(snn, T, B, 'folded'):
            if name is None:
                return [_time_mean(t, T, B) for t in _flatten(snn.spiking_path(x))]
            mod = snn.get_submodule(name)

            def grab(m, inputs, out):
                pre = _time_mean(inputs[0], T, B)
                rate = _time_mean(out, T, B).detach()
                sur = surrogate(pre)
                raise _Stop(sur + (rate - sur).detach())
            h = mod.register_forward_hook(grab)
            try:
                snn.spiking_path(x)
            except _Stop as s:
                return [s.value]
            finally:
                h.remove()
        raise RuntimeError(f'SNN layer {name} was not reached')

    def _loss(self, snn, qann, name, surrogate, x):
        target = self._qann_target(qann, name, x)
        rate = self._snn_rate(snn, name, surrogate, x)
        loss = sum(torch.nn.functional.mse_loss(r, t) for r, t in zip(rate, target))
        mismatch = None
        if name is not None:
            theta = snn.get_submodule(name).theta
            T = snn.snn_cfg['timesteps']
            count = torch.round(rate[0].detach() * T / theta)
            level = torch.round(target[0] * T / theta)
            mismatch = (count != level).float().mean().item()
        return loss, mismatch

    def _heldout(self, snn, qann, name, surrogate, batches):
        with torch.no_grad():
            vals = [self._loss(snn, qann, name, surrogate, x) for x in batches]
        loss = sum(v[0].item() for v in vals) / len(vals)
        mm = None if vals[0][1] is None else sum(v[1] for v in vals) / len(vals)
        return loss, mm

    # -- main --------------------------------------------------------------
    def run(self):
        runner = self.runner
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'to_snn'):
            raise TypeError('LayerwiseFinetuneLoop needs a fastsnn_mm task model')
        runner.call_hook('before_train')
        model.eval()
        qann = copy.deepcopy(model)
        qann.snn_cfg = None
        for p in qann.parameters():
            p.requires_grad_(False)
        model.to_snn(mode='folded', **self.snn_kwargs)
        cfg = model.snn_cfg
        runner.logger.info(f'Layer-wise fine-tuning: T={cfg["timesteps"]}, '
                           f'neuron={cfg["neuron"]}')
        if self.evaluate and runner._val_loop is not None:
            before = runner.val_loop.run()
            runner.logger.info(f'SNN metric before fine-tuning: {before}')
        # the optimizer must see the SNN's parameters (conversion may
        # have replaced layers), so it is rebuilt from the config
        runner.optim_wrapper = runner.build_optim_wrapper(
            copy.deepcopy(runner.cfg.optim_wrapper))
        optim = runner.optim_wrapper

        train_iter = self._batches(self.dataloader)
        held_loader = runner.val_dataloader if runner._val_loop is not None \
            else self.dataloader
        held = []
        for data in held_loader:
            held.append(self._inputs(model, data))
            if len(held) >= self.heldout_batches:
                break

        sample = self._inputs(model, next(train_iter))
        groups = assign_layer_groups(model, sample)
        if not self.tune_output:
            groups = [g for g in groups if g[0] is not None]
        all_params = [p for p in model.parameters()]
        for k, (name, params) in enumerate(groups):
            label = name or 'output layers'
            if not params:
                continue
            surrogate = None
            if name is not None:
                surrogate = copy.deepcopy(qann.get_submodule(name))
                assert isinstance(surrogate, QuantReLU)
            ids = {id(p) for p in params}
            for p in all_params:
                p.requires_grad_(id(p) in ids)
            saved = [p.detach().clone() for p in params]
            index_of = {id(p): i for i, p in enumerate(params)}
            before = self._heldout(model, qann, name, surrogate, held)
            for _ in range(self.iters_per_layer):
                x = self._inputs(model, next(train_iter))
                loss, _ = self._loss(model, qann, name, surrogate, x)
                optim.update_params(loss)
                self._iter += 1
            after = self._heldout(model, qann, name, surrogate, held)
            changed = [n for n, p in model.named_parameters()
                       if id(p) in ids and not torch.equal(
                           p.detach(), saved[index_of[id(p)]])]
            worse = after[0] > before[0] or (
                before[1] is not None and after[1] > before[1])
            reverted = self.keep_best and worse
            if reverted:
                with torch.no_grad():
                    for p, s in zip(params, saved):
                        p.copy_(s)
            row = dict(layer=label, index=k, loss_before=before[0],
                       loss_after=after[0], mismatch_before=before[1],
                       mismatch_after=after[1], reverted=reverted,
                       changed=changed)
            self.report.append(row)
            runner.logger.info(
                f'[{k + 1}/{len(groups)}] {label}: held-out MSE '
                f'{before[0]:.5f} -> {after[0]:.5f}' +
                ('' if before[1] is None else
                 f', mismatch {before[1]:.4f} -> {after[1]:.4f}') +
                (' (reverted)' if reverted else ''))
        for p in all_params:
            p.requires_grad_(True)
        path = osp.join(runner.work_dir,
                        f'snn_finetuned_{cfg["neuron"]}_T{cfg["timesteps"]}.pth')
        save_checkpoint(dict(meta=dict(snn=cfg, layerwise=self.report),
                             state_dict=model.state_dict()), path)
        runner.logger.info(f'saved fine-tuned SNN checkpoint to {path}')
        runner.call_hook('after_train')
        if self.evaluate and runner._val_loop is not None:
            after = runner.val_loop.run()
            runner.logger.info(f'SNN metric after fine-tuning: {after}')
        return model
