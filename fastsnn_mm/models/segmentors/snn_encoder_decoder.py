"""mmseg EncoderDecoder (DeepLab style) with QAT and SNN inference."""
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import add_prefix

from ..timestep_mixin import TimestepMixin


@MODELS.register_module()
class FastSNNEncoderDecoder(TimestepMixin, EncoderDecoder):
    """``EncoderDecoder`` plus ``quant=dict(...)`` and ``snn=dict(...)``.

    Spiking path: backbone -> neck -> ``decode_head.forward`` (its
    ``conv_seg`` is the last linear layer, averaged over T). Decode: the
    head's stock ``predict_by_feat`` (resize to the image); whole and slide
    inference both go through :meth:`encode_decode`.
    """

    def __init__(self, *args, quant=None, snn=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.init_fastsnn(quant, snn)

    def spiking_path(self, inputs):
        return self.decode_head(self.extract_feat(inputs))

    def loss(self, inputs, data_samples):
        if self.ensure_converted().is_snn:
            return self.snn_loss(inputs, data_samples)
        return super().loss(inputs, data_samples)

    def loss_from_outputs(self, outs, data_samples):
        # auxiliary heads read backbone features off the spiking path's
        # outputs: an SNN is trained on the decode head's loss alone
        return add_prefix(self.decode_head.loss_by_feat(outs, data_samples),
                          'decode')

    def _forward(self, inputs, data_samples=None):
        if self.ensure_converted().is_snn:
            return self.snn_forward(inputs)
        return super()._forward(inputs, data_samples)

    def encode_decode(self, inputs, batch_img_metas):
        if not self.ensure_converted().is_snn:
            return super().encode_decode(inputs, batch_img_metas)
        return self.decode_head.predict_by_feat(self.snn_forward(inputs),
                                                batch_img_metas)
