"""The one writer of SNN checkpoints, so every SNN file reads the same way.

Both the conversion hook (a plain conversion) and the fine-tuning loop (a
tuned SNN) save through :func:`save_snn_checkpoint`. The file is a regular
mmengine checkpoint:

- ``state_dict``: the SNN's weights on the CPU (thresholds as ``theta``;
  a QANN loads them back as alphas, and the reverse);
- ``meta['snn']``: the model's ``snn_cfg`` (``timesteps``, ``neuron``,
  ``mode``, ``time_chunk``), what a reader needs to rebuild the SNN;
- ``meta['epoch']`` / ``meta['iter']``: where the run stood;
- anything a writer adds beside them (the loop: ``meta['layerwise']``, its
  per-group report).

Files written before this module (the hook's ``snn/epoch/iter`` and the
loop's ``snn/layerwise``) already had this ``meta['snn']`` and still load.
The file is written to a temporary name and renamed (a killed run never
leaves half a checkpoint), by the main process only under DDP.
"""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.runner.checkpoint import weights_to_cpu

from ..errors import BadArgumentError
from ..utils.safe_checkpoint import save_checkpoint_atomic


def snn_checkpoint_name(snn_cfg, prefix='snn'):
    """``<prefix>_<neuron>_T<T>.pth``, the name the work dir shows."""
    return f'{prefix}_{snn_cfg["neuron"]}_T{snn_cfg["timesteps"]}.pth'


def save_snn_checkpoint(model, work_dir, *, epoch, iteration, prefix='snn',
                        **meta):
    """Write ``model`` (a converted SNN) into ``work_dir``; return the path.

    ``epoch`` / ``iteration``: the run's position (``meta['epoch']``,
    ``meta['iter']``); further ``meta`` entries are stored beside them.
    """
    cfg = getattr(model, 'snn_cfg', None)
    if not cfg:
        raise BadArgumentError(
            f'{type(model).__name__} is not a converted SNN (no snn_cfg): '
            'convert it with to_snn() before saving an SNN checkpoint')
    path = osp.join(work_dir, snn_checkpoint_name(cfg, prefix))
    if is_main_process():
        ckpt = dict(meta=dict(snn=dict(cfg), epoch=epoch, iter=iteration,
                              **meta),
                    state_dict=weights_to_cpu(model.state_dict()))
        save_checkpoint_atomic(ckpt, path)
    return path
