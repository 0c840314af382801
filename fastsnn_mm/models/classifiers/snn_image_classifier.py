"""mmpretrain ImageClassifier that trains as a QANN and infers as an SNN."""
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS

from ..timestep_mixin import TimestepMixin


@MODELS.register_module()
class FastSNNImageClassifier(TimestepMixin, ImageClassifier):
    """``ImageClassifier`` plus ``quant=dict(bits=...)`` and ``snn=dict(...)``.

    Spiking path: backbone -> neck -> head (its fc is the last linear layer,
    averaged over T). Decode: the head's stock ``_get_predictions``.
    """

    def __init__(self, *args, quant=None, snn=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.init_fastsnn(quant, snn)

    def spiking_path(self, inputs):
        return self.head(self.extract_feat(inputs))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'tensor' and self.ensure_converted().is_snn:
            return self.snn_forward(inputs)
        return super().forward(inputs, data_samples, mode)

    def loss(self, inputs, data_samples):
        if self.ensure_converted().is_snn:
            return self.snn_loss(inputs, data_samples)
        return super().loss(inputs, data_samples)

    def loss_from_outputs(self, outs, data_samples):
        return self.head._get_loss(outs, data_samples)

    def predict(self, inputs, data_samples=None, **kwargs):
        if not self.ensure_converted().is_snn:
            return super().predict(inputs, data_samples, **kwargs)
        return self.head._get_predictions(self.snn_forward(inputs),
                                          data_samples)
