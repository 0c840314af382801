"""Fail fast, with one clear line, when a config's data is not on disk.

mm datasets fail deep inside loading with messages that name neither the
config nor the layout they expect. ``check_data_root`` looks at the paths a
config's dataloaders will read before anything is built.
"""
import os.path as osp
from typing import Iterator, Optional

# Expected layout per dataset type; ``{root}`` is data_root
# without its trailing slash.
LAYOUTS = {
    'VOCDataset': 'VOCdevkit layout {root}/{{VOC2007,VOC2012}}/'
                  '{{JPEGImages,Annotations,ImageSets/Main}}',
    'XMLDataset': 'VOC layout {root}/VOC2007/'
                  '{{JPEGImages,Annotations,ImageSets/Main}}',
    'PascalVOCDataset': 'VOC2012 layout {root}/{{JPEGImages,'
                        'SegmentationClass,SegmentationClassAug,'
                        'ImageSets/Segmentation}}',
    'BaseSegDataset': 'images, masks and split lists under {root}',
    'CustomDataset': 'class folders and an optional ann_file under {root}',
    'CIFAR10': 'CIFAR-10 python batches in {root}/cifar-10-batches-py/',
    'CIFAR100': 'CIFAR-100 python files in {root}/cifar-100-python/',
}
# Folders that must exist inside data_root for datasets with fixed names.
FIXED_DIRS = {'CIFAR10': 'cifar-10-batches-py', 'CIFAR100': 'cifar-100-python'}


def _leaf_datasets(ds) -> Iterator[dict]:
    """Datasets inside wrappers (Repeat, ClassBalanced, Concat)."""
    if not isinstance(ds, dict):
        return
    if 'datasets' in ds:
        for sub in ds['datasets']:
            yield from _leaf_datasets(sub)
    elif 'dataset' in ds:
        yield from _leaf_datasets(ds['dataset'])
    else:
        yield ds


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _needed(ds: dict) -> Iterator[tuple]:
    """(path, is_file) pairs a dataset reads, most specific first."""
    root = ds.get('data_root') or ''
    kind = ds.get('type', '')
    if ds.get('ann_file'):
        yield _join(root, ds['ann_file']), True
    prefix = ds.get('data_prefix') or {}
    if isinstance(prefix, str):
        prefix = dict(img_path=prefix)
    for key, sub in sorted(prefix.items()):
        if not sub:
            continue
        path = _join(root, sub)
        yield path, False
        if key == 'sub_data_root':
            yield osp.join(path, ds.get('img_subdir', 'JPEGImages')), False
            yield osp.join(path, ds.get('ann_subdir', 'Annotations')), False
    if kind in FIXED_DIRS:
        yield osp.join(root, FIXED_DIRS[kind]), False
    if root:
        yield root, False


def check_data_root(cfg, layout: Optional[str] = None) -> None:
    """Raise ``FileNotFoundError`` naming the first missing data path.

    Walks the train/val/test dataloaders of ``cfg`` (wrapped datasets too).
    The message's layout hint is ``layout``, else ``cfg.data_layout``, else
    a default for the dataset type; ``{root}`` in it becomes the data_root.
    """
    hint = layout or cfg.get('data_layout')
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not loader:
            continue
        for ds in _leaf_datasets(loader.get('dataset')):
            for path, is_file in _needed(ds):
                found = osp.isfile(path) if is_file else osp.isdir(path)
                if found:
                    continue
                kind = str(ds.get('type', ''))
                text = hint or LAYOUTS.get(kind, 'the layout of ' + kind)
                expected = text.format(
                    root=(ds.get('data_root') or '.').rstrip('/'))
                raise FileNotFoundError(
                    f'{path} not found ({name}): expected {expected}')
