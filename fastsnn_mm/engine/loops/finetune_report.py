"""What a fine-tuning run leaves behind: the per-layer mismatch before and
after in the log, ``layerwise_finetune.json`` and the tuned SNN checkpoint
(``snn_finetuned_<neuron>_T<T>.pth``, see
:mod:`fastsnn_mm.engine.snn_checkpoint`)."""
import numbers
import os.path as osp

from ..snn_checkpoint import save_snn_checkpoint
from .finetune_progress import REPORT_FILE, write_json
from .judging_data import split_configured

_NAN = (float('nan'), float('nan'))


def _mean(stats, i):
    return sum(v[i] for v in stats.values()) / max(len(stats), 1)


def mismatch_lines(before, after):
    """The log block: each neuron layer's count mismatch before -> after,
    with the inherited part in brackets, and the means."""
    lines = [f'  {name}: {before.get(name, _NAN)[0]:.4f} -> '
             f'{after[name][0]:.4f} (inherited {before.get(name, _NAN)[1]:.4f}'
             f' -> {after[name][1]:.4f})' for name in after]
    return ('count mismatch per neuron layer (held-out), before -> after '
            '(in brackets: the part the layer\'s summed input already '
            'carried from earlier layers):\n' + '\n'.join(lines) +
            f'\n  mean: {_mean(before, 0):.4f} -> {_mean(after, 0):.4f} '
            f'(inherited {_mean(before, 1):.4f} -> {_mean(after, 1):.4f})')


def report_data(settings, snn_cfg, progress, metric_key, after, extra):
    """The JSON report: settings, metrics, per-layer mismatch, groups."""
    before = progress.layers_before
    return dict(
        timesteps=snn_cfg['timesteps'], neuron=snn_cfg['neuron'],
        surrogate=settings.surrogate, lr_candidates=settings.lr_candidates,
        iters_per_layer=settings.iters_per_layer, metric_key=metric_key,
        metric_qann=progress.metric_qann,
        metric_before=progress.metric_initial,
        metric_after=progress.metric,
        mean_mismatch_before=_mean(before, 0),
        mean_mismatch_after=_mean(after, 0),
        mean_inherited_before=_mean(before, 1),
        mean_inherited_after=_mean(after, 1),
        joint_iters=settings.joint_iters, joint_lr=settings.joint_lr,
        **extra,
        layers=[dict(layer=n, mismatch_before=before.get(n, _NAN)[0],
                     mismatch_after=after[n][0],
                     inherited_before=before.get(n, _NAN)[1],
                     inherited_after=after[n][1]) for n in after],
        groups=progress.rows)


def write_report(runner, model, settings, progress, metric_key, after,
                 extra=None):
    """Log the mismatch block and the judging metric, write the JSON and
    the tuned SNN checkpoint; returns the checkpoint's path."""
    log = runner.logger.info
    log(mismatch_lines(progress.layers_before, after))
    if progress.metric_initial is not None:
        qann = progress.metric_qann
        log(f'held-out {metric_key}: {progress.metric_initial:.4f} -> '
            f'{progress.metric:.4f} (QANN '
            f'{float("nan") if qann is None else qann:.4f})')
    write_json(osp.join(runner.work_dir, REPORT_FILE), report_data(
        settings, model.snn_cfg, progress, metric_key, after, extra or {}))
    path = save_snn_checkpoint(model, runner.work_dir, epoch=0,
                               iteration=progress.iter,
                               prefix='snn_finetuned', layerwise=progress.rows)
    log(f'saved fine-tuned SNN checkpoint to {path}')
    return path


def evaluate_split(runner, split):
    """The stock ``split`` loop's metrics (numbers as floats, for JSON and
    checkpoints); None when the config has no such split."""
    if not split_configured(runner, split):
        return None
    loop = runner.val_loop if split == 'val' else runner.test_loop
    return {k: float(v) if isinstance(v, numbers.Real) else v
            for k, v in loop.run().items()}
