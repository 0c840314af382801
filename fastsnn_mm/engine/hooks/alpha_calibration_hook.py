"""Calibrate QuantReLU clips before QAT starts from a full-precision net."""
from itertools import islice

from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ...quantization import QuantReLU, calibrate_alpha
from ...registry import HOOKS
from ...utils.modules import unwrap_model


@HOOKS.register_module()
class QuantAlphaCalibrationHook(Hook):
    """Run :func:`calibrate_alpha` on a few train batches in ``before_train``.

    Meant for ``load_from`` a full-precision checkpoint into a QANN, whose
    alphas would otherwise start at QuantReLU's default. It does nothing on
    ``resume`` (the checkpoint has trained alphas) and, with
    ``only_if_load_from``, when no checkpoint is loaded. Under distributed
    training every rank calibrates on its own batches; alphas are averaged
    so the replicas stay identical.

    Args:
        num_batches: train batches to run.
        method, percentile: see :func:`calibrate_alpha`.
        only_if_load_from: skip when the runner has no ``load_from``.
    """

    priority = 'HIGH'

    def __init__(self, num_batches: int = 8, method: str = 'percentile',
                 percentile: float = 99.9, only_if_load_from: bool = True):
        if not isinstance(num_batches, int) or num_batches < 1:
            raise ValueError(f'num_batches must be a positive int, '
                             f'got {num_batches!r}')
        self.num_batches = num_batches
        self.method = method
        self.percentile = percentile
        self.only_if_load_from = only_if_load_from

    def before_train(self, runner) -> None:
        # mmengine 0.10.7 keeps resume / load_from only as private runner
        # attributes; runner.cfg lacks them for a Runner built without one
        if getattr(runner, '_resume', False):
            return
        if self.only_if_load_from and not getattr(runner, '_load_from', None):
            print_log('QuantAlphaCalibrationHook: no load_from; skipped',
                      logger='current')
            return
        model = unwrap_model(runner.model)
        batches = islice(runner.train_dataloader, self.num_batches)
        alphas = calibrate_alpha(model, batches, method=self.method,
                                 percentile=self.percentile)
        for mod in model.modules():
            if isinstance(mod, QuantReLU):
                all_reduce(mod.alpha.data, op='mean')
        shown = ', '.join(f'{n}={a:.3g}' for n, a in list(alphas.items())[:4])
        print_log(f'QuantAlphaCalibrationHook: set {len(alphas)} alphas '
                  f'({self.method}) from {self.num_batches} batches: '
                  f'{shown}{" ..." if len(alphas) > 4 else ""}',
                  logger='current')
