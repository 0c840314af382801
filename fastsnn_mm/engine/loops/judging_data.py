"""Which images judge fine-tuning, and which report it.

Every stage keeps or reverts its change by the task metric on *judging*
images. If those were the images the run then reports on, the reported
number would be fitted to them (measured: a joint stage that scored above
the QANN on the val set that judged it fell 0.6 mAP points below it on an
unseen split). So by default the loop holds a slice of the training data
out of tuning (``judge_size`` images, drawn with ``judge_seed``), judges
on it through the val pipeline and evaluator, and reports on the val (or
test) split, which no stage has seen.

``judge_on`` picks the source:

- ``'train_slice'`` (default): the held-out slice of the training data;
  tuning draws only from the rest.
- ``'val'`` / ``'test'``: that split's dataloader and evaluator; with
  ``report_on`` the same split this is the old behaviour, kept for
  comparison (the report then says the split it reports also judged).
- ``'val_agreement'``: the val split's images without their labels,
  judged by how closely the SNN's outputs follow the QANN's
  (:class:`~.finetune_judges.AgreementJudge`); what a user without
  annotated held-out images can do.
- a dict: a dataloader config of a split of its own (e.g. another
  ``ann_file``), evaluated with the val evaluator.
"""
import copy
import os.path as osp

import numpy as np
from mmengine.registry import DATASETS

from ...errors import BadArgumentError

JUDGE_SOURCES = ('train_slice', 'val', 'test', 'val_agreement')
#: judges that read no labels: the SNN against its QANN
LABEL_FREE = ('val_agreement',)
REPORT_SPLITS = ('val', 'test')


class IndexedSubset:
    """The items ``indices`` of ``dataset``, with what mm samplers and
    evaluators read of a dataset (``metainfo``, ``get_data_info``); it
    works for dataset wrappers too, where ``get_subset`` does not."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    @property
    def metainfo(self):
        return self.dataset.metainfo

    def get_data_info(self, idx):
        return self.dataset.get_data_info(self.indices[idx])

    def __getitem__(self, idx):
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)


def split_indices(total, size, seed):
    """(tuning indices, judging indices) of ``total`` items, both sorted:
    ``size`` items (an int, or a fraction in (0, 1)) drawn with ``seed``
    judge, the rest tune."""
    count = int(round(size * total)) if isinstance(size, float) else size
    if not 1 <= count < total:
        raise BadArgumentError(
            f'train_cfg.judge_size={size!r} holds out {count} of the '
            f'{total} training items: it must leave at least one on each '
            'side; set train_cfg.judge_size to a count in 1..'
            f'{total - 1} or a fraction in (0, 1)')
    order = np.random.default_rng(seed).permutation(total)
    return sorted(order[count:].tolist()), sorted(order[:count].tolist())


def _build_dataset(cfg):
    dataset = DATASETS.build(cfg)
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    return dataset


def image_file(dataset, idx):
    """The image file of item ``idx`` (its basename), or None."""
    info = dataset.get_data_info(idx) if hasattr(
        dataset, 'get_data_info') else {}
    path = info.get('img_path') if isinstance(info, dict) else None
    return None if path is None else osp.basename(path)


def carve_judging_slice(train_loader_cfg, val_loader_cfg, size, seed):
    """Split the training set: (train dataloader config over the tuning
    items, judging dataloader config over the held-out slice through the
    val pipeline, description for the report). Without a val dataloader
    the slice keeps the training pipeline, in a fixed order."""
    if not isinstance(train_loader_cfg, dict) or not isinstance(
            train_loader_cfg.get('dataset'), dict):
        raise BadArgumentError(
            "train_cfg.judge_on='train_slice' needs train_dataloader given "
            "as a config (a dict): set it so in the config, or set "
            "train_cfg.judge_on='val'")
    if val_loader_cfg is None:
        val_loader_cfg = dict(
            copy.deepcopy(train_loader_cfg),
            sampler=dict(type='DefaultSampler', shuffle=False))
    train_cfg = copy.deepcopy(train_loader_cfg)
    data_cfg = train_cfg.pop('dataset')
    full = _build_dataset(copy.deepcopy(data_cfg))
    # the same items through the val pipeline: judged as val images are
    judge_data_cfg = copy.deepcopy(data_cfg)
    judge_data_cfg['pipeline'] = copy.deepcopy(
        val_loader_cfg['dataset']['pipeline'])
    judged_view = _build_dataset(judge_data_cfg)
    if len(judged_view) != len(full):
        raise BadArgumentError(
            'the training set has another length through the val pipeline '
            f'({len(judged_view)} vs {len(full)} items), so no slice of it '
            "can be held out: set train_cfg.judge_on to 'val' or to a "
            'dataloader config of a split of its own')
    tune, judge = split_indices(len(full), size, seed)
    judge_set = IndexedSubset(judged_view, judge)
    judge_cfg = copy.deepcopy(val_loader_cfg)
    judge_cfg['dataset'] = judge_set
    train_cfg['dataset'] = IndexedSubset(full, tune)
    described = dict(source='train_slice', split='train', seed=seed,
                     images=len(judge), indices=judge,
                     files=[image_file(judge_set, i)
                            for i in range(len(judge_set))])
    return train_cfg, judge_cfg, described


def describe_split(name, loader):
    """The report's note on a whole split: which one, how many images."""
    own = not isinstance(name, str)
    return dict(source='dataloader config' if own else name,
                split=None if own else name, images=len(loader.dataset))


def split_configured(runner, split):
    """Whether the config has ``split``'s dataloader, loop and evaluator."""
    cfg = runner.cfg
    return all(cfg.get(f'{split}_{k}') is not None
               for k in ('dataloader', 'cfg', 'evaluator'))


def _evaluator_for(runner, dataset):
    """The val evaluator for ``dataset``'s images, or None without one."""
    if runner.cfg.get('val_evaluator') is None:
        return None
    evaluator = runner.build_evaluator(copy.deepcopy(runner.cfg.val_evaluator))
    evaluator.dataset_meta = dataset.metainfo
    return evaluator


def judging_source(runner, judge_on, train_loader, carved=None):
    """(dataloader, evaluator | None, description) of the judging images.

    ``carved``: (judging dataloader config, description) of the training
    slice held out by :func:`carve_judging_slice`.
    """
    if judge_on == 'train_slice':
        loader_cfg, described = carved
        loader = runner.build_dataloader(loader_cfg, seed=runner.seed)
        return loader, _evaluator_for(runner, loader.dataset), described
    if isinstance(judge_on, dict):
        loader = runner.build_dataloader(judge_on, seed=runner.seed)
        return (loader, _evaluator_for(runner, loader.dataset),
                describe_split(judge_on, loader))
    if judge_on in LABEL_FREE:
        if runner.cfg.get('val_dataloader') is None:
            raise BadArgumentError(
                f"train_cfg.judge_on='{judge_on}' needs a val_dataloader in "
                "the config (its images judge, its labels are not read): "
                "add one, or set train_cfg.judge_on='train_slice'")
        loader = runner.build_dataloader(runner.cfg.val_dataloader,
                                         seed=runner.seed)
        return loader, None, dict(describe_split('val', loader),
                                  source=judge_on, labels=False)
    if not split_configured(runner, judge_on):
        if judge_on == 'val':  # as before: train batches, no metric
            return train_loader, None, describe_split('train', train_loader)
        raise BadArgumentError(
            f"train_cfg.judge_on='{judge_on}' needs {judge_on}_dataloader, "
            f"{judge_on}_cfg and {judge_on}_evaluator in the config: add "
            "them, or set train_cfg.judge_on='train_slice'")
    loop = runner.val_loop if judge_on == 'val' else runner.test_loop
    return (loop.dataloader, loop.evaluator,
            describe_split(judge_on, loop.dataloader))


def describe_judging(judged):
    """'N images of the <split> split' (and how a slice was drawn)."""
    where = judged['source'] if judged['split'] is None else \
        f'the {judged["split"]} split'
    if judged.get('labels') is False:
        where += ' (labels not read: SNN-QANN output agreement)'
    seed = f', held out with seed {judged["seed"]}' if 'seed' in judged \
        else ''
    return f'{judged["images"]} images of {where}{seed}'
