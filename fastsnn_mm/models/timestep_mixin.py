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
from ..errors import BadArgumentError
from ..quantization import quantize_model
from ..spiking import convert_to_snn, neurons_of, run_timesteps
from ..spiking.converter import check_snn_arguments
from ..spiking.runner import check_mode, check_timesteps


#: what a config's ``quant=dict(...)`` / ``snn=dict(...)`` may hold
QUANT_KEYS = ('bits', 'skip', 'alpha', 'weight')
SNN_KEYS = ('timesteps', 'neuron', 'mode', 'time_chunk', 'skip', 'fold_bn')


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
    """Mixed into an mm model class in front of it (``class X(Mixin, Stock)``)."""

    def init_fastsnn(self, quant=None, snn=None):
        if quant:
            quantize_model(self, **_config_dict('quant', quant, QUANT_KEYS,
                                                required=('bits', )))
        self.snn_cfg = None
        self._pending_snn = None
        if snn:
            snn = _config_dict('snn', snn, SNN_KEYS)
            # fail at build time, not at the first test batch
            check_snn_arguments(snn.get('timesteps'),
                                snn.get('neuron', 'signed'),
                                snn.get('mode', 'folded'),
                                snn.get('time_chunk'))
            self._pending_snn = snn

    # -- state -----------------------------------------------------------
    @property
    def is_snn(self) -> bool:
        self._convert_if_pending()
        return self.snn_cfg is not None

    def _convert_if_pending(self):
        pending = getattr(self, '_pending_snn', None)
        if pending:
            self._pending_snn = None
            convert_to_snn(self, inplace=True, **pending)

    def set_snn(self, timesteps, neuron='signed', mode='folded',
                time_chunk=None):
        """Called by :func:`convert_to_snn` once neurons are in place."""
        T = check_timesteps(timesteps)
        self.snn_cfg = dict(timesteps=T, neuron=neuron, mode=check_mode(mode),
                            time_chunk=time_chunk)

    def to_snn(self, **kwargs):
        """Convert this model in place (see :func:`convert_to_snn`)."""
        self._pending_snn = None
        return convert_to_snn(self, inplace=True, **kwargs)

    # -- inference ---------------------------------------------------------
    def spiking_path(self, inputs):
        """Input batch -> outputs of the last linear layers (per task)."""
        raise NotImplementedError

    def snn_forward(self, inputs):
        """Run :meth:`spiking_path` as a T-step SNN, outputs averaged over T."""
        cfg = self.snn_cfg
        return run_timesteps(self, self.spiking_path, inputs,
                             cfg['timesteps'], cfg['mode'],
                             cfg.get('time_chunk'))

    def refuse_snn_loss(self):
        raise RuntimeError(
            'a converted SNN is not trained by back-propagation: evaluate it, '
            'or tune it with LayerwiseFinetuneLoop')

    @property
    def neurons(self):
        return neurons_of(self)
