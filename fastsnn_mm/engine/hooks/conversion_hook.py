"""Hook that turns the trained QANN into its SNN at a configured point."""
import os.path as osp

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import weights_to_cpu

from ...registry import HOOKS
from ...utils.safe_checkpoint import save_checkpoint_atomic

POINTS = ('after_train', 'before_test')


@HOOKS.register_module()
class FastSNNConversionHook(Hook):
    """Convert the runner's model to an SNN and save its checkpoint.

    Args:
        convert_at (str | tuple): 'after_train' (once QAT ends) and/or
            'before_test' (evaluate the SNN with the stock test loop).
        timesteps (int | None): T; default 2^b - 1.
        neuron (str): 'signed' or 'unsigned'.
        mode (str): 'folded' or 'streaming'.
        time_chunk (int | None): folded mode: steps per pass (None: chosen
            to keep folded tensors small; see ``convert_to_snn``).
        save (bool): write ``snn_<neuron>_T<T>.pth`` into the work dir.
    """

    priority = 'LOW'  # after checkpoint hooks have saved the QANN

    def __init__(self, convert_at=('after_train',), timesteps=None,
                 neuron='signed', mode='folded', save=True,
                 time_chunk=None):
        points = (convert_at,) if isinstance(convert_at, str) else tuple(convert_at)
        bad = [p for p in points if p not in POINTS]
        if bad or not points:
            raise ValueError(f'convert_at must be drawn from {POINTS}, got {convert_at!r}')
        self.points = points
        self.snn_kwargs = dict(timesteps=timesteps, neuron=neuron, mode=mode,
                               time_chunk=time_chunk)
        self.save = save
        self.converted_at = []

    def _convert(self, runner, point):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'to_snn'):
            raise TypeError(
                f'{type(model).__name__} is not a fastsnn_mm task model; use '
                'FastSNNImageClassifier / FastSNNSingleStageDetector / '
                'FastSNNEncoderDecoder as the model type')
        model.to_snn(**self.snn_kwargs)  # logs T, neuron, mode, layers
        cfg = model.snn_cfg
        self.converted_at.append(point)
        if self.save:
            path = osp.join(runner.work_dir,
                            f'snn_{cfg["neuron"]}_T{cfg["timesteps"]}.pth')
            meta = dict(snn=cfg, epoch=runner.epoch, iter=runner.iter)
            # a run killed while saving leaves no half-written checkpoint
            save_checkpoint_atomic(
                dict(meta=meta, state_dict=weights_to_cpu(model.state_dict())),
                path)
            runner.logger.info(f'FastSNN: saved SNN checkpoint to {path}')

    def after_train(self, runner):
        if 'after_train' in self.points:
            self._convert(runner, 'after_train')

    def before_test(self, runner):
        if 'before_test' in self.points:
            self._convert(runner, 'before_test')
