"""Hook that turns the trained QANN into its SNN at a configured point."""
from mmengine.hooks import Hook

from ...registry import HOOKS
from ...tasks import TASK_WRAPPERS
from ...utils.modules import unwrap_model
from ..snn_checkpoint import save_snn_checkpoint

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
        save (bool): write ``snn_<neuron>_T<T>.pth`` into the work dir
            (see :mod:`fastsnn_mm.engine.snn_checkpoint`).
    """

    priority = 'LOW'  # after checkpoint hooks have saved the QANN

    def __init__(self, convert_at=('after_train',), timesteps=None,
                 neuron='signed', mode='folded', save=True,
                 time_chunk=None):
        points = (convert_at, ) if isinstance(convert_at, str) \
            else tuple(convert_at)
        bad = [p for p in points if p not in POINTS]
        if bad or not points:
            raise ValueError(f'convert_at must be drawn from {POINTS}, got '
                             f'{convert_at!r}')
        self.points = points
        self.snn_kwargs = dict(timesteps=timesteps, neuron=neuron, mode=mode,
                               time_chunk=time_chunk)
        self.save = save
        self.converted_at = []

    def _convert(self, runner, point):
        model = unwrap_model(runner.model)
        if not hasattr(model, 'to_snn'):
            raise TypeError(
                f'{type(model).__name__} is not a fastsnn_mm task model; use '
                f'{" / ".join(TASK_WRAPPERS)} as the model type')
        model.to_snn(**self.snn_kwargs)  # logs T, neuron, mode, layers
        self.converted_at.append(point)
        if self.save:
            path = save_snn_checkpoint(model, runner.work_dir,
                                       epoch=runner.epoch,
                                       iteration=runner.iter)
            runner.logger.info(f'FastSNN: saved SNN checkpoint to {path}')

    def after_train(self, runner):
        if 'after_train' in self.points:
            self._convert(runner, 'after_train')

    def before_test(self, runner):
        if 'before_test' in self.points:
            self._convert(runner, 'before_test')
