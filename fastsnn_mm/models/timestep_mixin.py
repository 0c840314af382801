"""What the three task wrappers share: QAT set-up and T-step SNN inference.

A stock mm model splits inference into a *spiking path* (backbone, neck,
head convs, up to the last linear layer) and a non-spiking *decode* (box
decoding + NMS, logit resizing, label picking). A wrapper only says what its
path is (``spiking_path``); this mixin runs it over T steps, averages the
outputs, and the wrapper hands them to the stock decode, so stock metrics
and visualizers evaluate the SNN unchanged.

Conversion is lazy: a model built with ``snn=dict(...)`` is a QANN until its
first inference, so QANN checkpoints (and SNN checkpoints, whose thresholds
load as alphas) load into it first by the usual mm means.
"""
import copy
from contextlib import contextmanager

from ..errors import BadArgumentError
from ..quantization.from_config import quantize_from_config
from ..spiking import convert_to_snn, neurons_of
from ..spiking.low_precision import check_spike_dtype
from ..spiking.runner import run_settings, run_settled
from ..spiking.validation import CONFIG, check_snn_arguments

#: what a config's ``quant=dict(...)`` / ``snn=dict(...)`` may hold
QUANT_KEYS = ('bits', 'skip', 'alpha', 'weight', 'make_convertible',
              'per_call_site')
SNN_KEYS = ('timesteps', 'neuron', 'mode', 'time_chunk', 'skip', 'fold_bn',
            'spike_dtype')


def _config_dict(name, value, allowed, required=()):
    """A ``quant``/``snn`` config field as a dict with known keys only."""
    if not isinstance(value, dict):
        raise BadArgumentError(
            f'model.{name} must be a dict like {name}=dict({allowed[0]}=...)'
            f' or None, got {value!r}')
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise BadArgumentError(
            f'model.{name} has unknown key(s) {", ".join(unknown)}: it takes '
            f'{", ".join(allowed)}')
    missing = [k for k in required if k not in value]
    if missing:
        raise BadArgumentError(
            f'model.{name} needs {", ".join(missing)}, e.g. '
            f'{name}=dict({missing[0]}=3)')
    return dict(value)


class TimestepMixin:
    """Mixed into an mm model class in front of it
    (``class X(Mixin, Stock)``)."""

    def init_fastsnn(self, quant=None, snn=None):
        if quant:
            quantize_from_config(self, self.spiking_path, **_config_dict(
                'quant', quant, QUANT_KEYS, required=('bits', )))
        self.snn_cfg = None
        self._pending_snn = None
        if snn:
            snn = _config_dict('snn', snn, SNN_KEYS)
            # fail at build time, not at the first test batch
            check_snn_arguments(snn.get('timesteps'),
                                snn.get('neuron', 'signed'),
                                snn.get('mode', 'folded'),
                                snn.get('time_chunk'), spelling=CONFIG)
            check_spike_dtype(snn.get('spike_dtype'), 'model.snn.spike_dtype')
            self._pending_snn = snn

    # -- state -----------------------------------------------------------
    @property
    def is_snn(self) -> bool:
        """Whether the model is converted now (a plain read: a pending
        ``snn=dict(...)`` counts only once :meth:`ensure_converted` ran)."""
        return self.snn_cfg is not None

    @property
    def pending_snn(self):
        """The ``snn=dict(...)`` settings the first inference will convert
        with, or None (not configured, or converted already)."""
        pending = getattr(self, '_pending_snn', None)
        return dict(pending) if pending else None

    def ensure_converted(self):
        """Apply a pending ``snn=dict(...)`` conversion now; returns self.

        Conversion waits until here so that checkpoints load into the QANN
        first; every inference and loss entry point calls this before it
        reads :attr:`is_snn`."""
        pending = getattr(self, '_pending_snn', None)
        if pending:
            self._pending_snn = None
            convert_to_snn(self, copy=False, **pending)
        return self

    def qann_copy(self):
        """A deep copy of this (not yet converted) model that stays a QANN:
        any pending conversion is dropped from the copy, so it can serve as
        the reference an SNN made from this model is compared with."""
        if self.is_snn:
            raise BadArgumentError(
                f'{type(self).__name__} is converted already: take the QANN '
                'copy before to_snn() (or load the QANN checkpoint into a '
                'model built without snn=dict(...))')
        qann = copy.deepcopy(self)
        qann._pending_snn = None
        return qann

    def set_snn(self, settings):
        """Called by :func:`convert_to_snn` once neurons are in place, with
        the run's :class:`~fastsnn_mm.spiking.settings.SNNSettings`
        (checked there once; read, not re-checked, from here on)."""
        self.snn_cfg = settings

    def to_snn(self, **kwargs):
        """Convert this model in place (see :func:`convert_to_snn`)."""
        self._pending_snn = None
        return convert_to_snn(self, copy=False, **kwargs)

    # -- inference ---------------------------------------------------------
    def spiking_path(self, inputs):
        """Input batch -> outputs of the last linear layers (per task)."""
        raise NotImplementedError

    def snn_forward(self, inputs):
        """Run :meth:`spiking_path` as a T-step SNN, outputs averaged over
        T."""
        return run_settings(self, self.spiking_path, inputs, self.snn_cfg)

    # -- task loss ---------------------------------------------------------
    def refuse_snn_loss(self):
        raise RuntimeError(
            'a converted SNN is not trained by back-propagation: evaluate it, '
            'or tune it with LayerwiseFinetuneLoop (task_iters > 0 trains '
            'it on the task loss)')

    @contextmanager
    def snn_loss_allowed(self):
        """Within: ``loss`` mode runs on the converted SNN
        (:meth:`snn_loss`). Spikes carry no gradient, so a loss is only
        of use where a surrogate carries it through the neurons: the
        fine-tuning loop's task-loss stage opens this together with one."""
        before = getattr(self, '_snn_loss_ok', False)
        self._snn_loss_ok = True
        try:
            yield self
        finally:
            self._snn_loss_ok = before

    def snn_loss(self, inputs, data_samples):
        """The task's own losses of the SNN: the spiking path at T (all
        steps in one folded pass), its outputs averaged over T, handed to
        the head's stock loss (:meth:`loss_from_outputs`). Refused outside
        :meth:`snn_loss_allowed`."""
        if not getattr(self, '_snn_loss_ok', False):
            self.refuse_snn_loss()
        T = self.snn_cfg.timesteps
        outs = run_settled(self, self.spiking_path, inputs, T, 'folded', T)
        return self.loss_from_outputs(outs, data_samples)

    def loss_from_outputs(self, outs, data_samples):
        """The head's stock losses of spiking-path outputs (per task)."""
        raise NotImplementedError

    @property
    def neurons(self):
        return neurons_of(self)
