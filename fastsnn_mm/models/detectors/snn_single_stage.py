"""mmdet single-stage detector (YOLOV3 included) with QAT and SNN inference."""
from mmdet.models.detectors import SingleStageDetector
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS

from ..timestep_mixin import TimestepMixin


@MODELS.register_module()
class FastSNNSingleStageDetector(TimestepMixin, SingleStageDetector):
    """``SingleStageDetector`` plus ``quant=dict(...)`` and ``snn=dict(...)``.

    Spiking path: backbone -> neck -> ``bbox_head.forward`` (the prediction
    convs are the last linear layers, averaged over T). Decode: the head's
    stock ``predict_by_feat`` (box decoding and NMS), so any stock YOLOV3
    config works by changing ``type`` only.
    """

    def __init__(self, *args, quant=None, snn=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.init_fastsnn(quant, snn)

    def spiking_path(self, inputs):
        return self.bbox_head(self.extract_feat(inputs))

    def loss(self, batch_inputs, batch_data_samples):
        if self.ensure_converted().is_snn:
            return self.snn_loss(batch_inputs, batch_data_samples)
        return super().loss(batch_inputs, batch_data_samples)

    def loss_from_outputs(self, outs, batch_data_samples):
        gt, gt_ignore, metas = unpack_gt_instances(batch_data_samples)
        return self.bbox_head.loss_by_feat(*outs, gt, metas, gt_ignore)

    def _forward(self, batch_inputs, batch_data_samples=None):
        if self.ensure_converted().is_snn:
            return self.snn_forward(batch_inputs)
        return super()._forward(batch_inputs, batch_data_samples)

    def predict(self, batch_inputs, batch_data_samples, rescale=True):
        if not self.ensure_converted().is_snn:
            return super().predict(batch_inputs, batch_data_samples, rescale)
        outs = self.snn_forward(batch_inputs)
        metas = [s.metainfo for s in batch_data_samples]
        results = self.bbox_head.predict_by_feat(
            *outs, batch_img_metas=metas, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)
