"""How fine-tuning measures the SNN: held-out scores against the QANN, the
task metric on the judging batches, and the per-layer count mismatch.

Every measure is averaged (or, for image counts, summed) over ranks, so
all ranks of a DDP run take the same keep-or-revert decisions.
"""
import torch

from ...analysis import collect_layer_stats
from .finetune_trainer import reduce_over_ranks
from .joint_tuning import output_loss
from .layer_targets import layer_loss

#: metric names tried, in order, when ``metric_key`` is not given
TASK_METRICS = ('top1', 'mAP', 'mIoU')


def pick_metric(metrics, key=None):
    """The task metric in an evaluator's output (higher is better)."""
    if key is not None:
        if key not in metrics:
            raise KeyError(f'metric_key {key!r} is not among the evaluator '
                           f'metrics {sorted(metrics)}; set metric_key to '
                           'one of them')
        return key
    for want in TASK_METRICS:
        for k in metrics:
            if k.split('/')[-1] == want:
                return k
    return next(iter(metrics))


def heldout_layer_score(snn, qann, name, batches, surrogate, quant_relu):
    """Held-out (MSE, mismatch | None) of one group, averaged over batches
    and ranks (``name`` None: the outputs' MSE, no mismatch)."""
    with torch.no_grad():
        vals = [layer_loss(snn, qann, name, x, surrogate, quant_relu)
                for x in batches]
    loss = reduce_over_ranks(torch.stack([v[0] for v in vals]).mean())
    if name is None:
        return loss, None
    return loss, reduce_over_ranks(torch.stack([v[1] for v in vals]).mean())


def heldout_output_loss(snn, qann, batches):
    """MSE of the SNN's outputs against the QANN's, held out."""
    with torch.no_grad():
        return reduce_over_ranks(torch.stack(
            [output_loss(snn, qann, x) for x in batches]).mean())


def layer_mismatch(qann, snn, batches):
    """Per neuron layer: (count mismatch against the QANN levels, the part
    of it that came in with the layer's input, i.e. inherited)."""
    stats = collect_layer_stats(qann, snn, batches)
    return {r['layer']: (reduce_over_ranks(r['mismatch']),
                         reduce_over_ranks(r['inherited_mismatch']))
            for r in stats['layers']}


class MetricJudge:
    """The task metric (higher is better) of a model on fixed batches,
    through the stock evaluator.

    Args:
        evaluator: an mmengine Evaluator whose ``dataset_meta`` is set.
        batches (list): dataloader batches (this rank's share).
        dataset_size (int | None): the size to evaluate with when
            ``batches`` hold a whole dataset (padding of the last batches
            dropped, as mmengine's ValLoop does); None: the images seen.
        metric_key (str | None): evaluator key; None: the first of
            :data:`TASK_METRICS` found.
    """

    def __init__(self, evaluator, batches, dataset_size=None,
                 metric_key=None):
        self.evaluator = evaluator
        self.batches = batches
        self.dataset_size = dataset_size
        self.metric_key = metric_key

    def evaluate(self, model):
        """All metrics of the evaluator for ``model`` on the batches."""
        count = 0
        with torch.no_grad():
            for data in self.batches:
                outputs = model.val_step(data)
                self.evaluator.process(data_samples=outputs, data_batch=data)
                count += len(outputs)
        size = int(reduce_over_ranks(count, op='sum'))
        if self.dataset_size is not None:
            size = self.dataset_size
        return self.evaluator.evaluate(size)

    def __call__(self, model):
        metrics = self.evaluate(model)
        self.metric_key = pick_metric(metrics, self.metric_key)
        return float(metrics[self.metric_key])


class AgreementJudge:
    """How closely the SNN's outputs follow the QANN's on judging images
    whose labels it never reads (higher is better: minus the MSE of the
    time-averaged outputs against the QANN's, summed over outputs, mean
    over batches and ranks; the QANN itself scores 0).

    Why: a label-free judge can use images no one annotated (the val split
    without its labels, or the deployment's own images), and it asks what
    conversion promises, that the SNN computes its QANN, rather than a
    task metric that a handful of images makes noisy.

    Args:
        qann: the frozen QANN the SNN is compared with.
        inputs (list[Tensor]): preprocessed judging batches.
    """

    metric_key = 'agreement (-output MSE vs QANN)'

    def __init__(self, qann, inputs):
        self.qann = qann
        self.inputs = inputs

    def __call__(self, model):
        if model is self.qann:
            return 0.0
        return -float(heldout_output_loss(model, self.qann, self.inputs))
