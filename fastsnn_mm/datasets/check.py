"""Fail fast, with one clear line, when a config's data is not usable.

mm datasets fail deep inside loading with messages that name neither the
config nor the layout they expect (a bad XML raises ``ParseError: not
well-formed`` without the file's name). ``check_data_root`` looks at the
paths a config's dataloaders will read before anything is built;
``check_data_files`` then opens the files their split lists name.
"""
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Iterator, Optional

from ..errors import DataError, MissingFileError

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
    """Raise :class:`MissingFileError` (a ``FileNotFoundError``) naming the
    first missing data path, or the data root when it is empty.

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
                root = ds.get('data_root') or ''
                expected = text.format(root=(root or '.').rstrip('/'))
                if root and osp.isdir(root) and not os.listdir(root):
                    raise MissingFileError(
                        f'data root {root} is empty ({name}): expected '
                        f'{expected}')
                raise MissingFileError(
                    f'{path} not found ({name}): expected {expected}')


# -- the files a split list names ------------------------------------------
#: Image bands each PIL mode decodes to.
_BANDS = {'1': 1, 'L': 1, 'P': 1, 'I': 1, 'F': 1, 'I;16': 1, 'LA': 2,
          'PA': 2, 'RGB': 3, 'YCbCr': 3, 'LAB': 3, 'HSV': 3, 'RGBA': 4,
          'CMYK': 4, 'RGBX': 4}


def _lines(path: str):
    with open(path, encoding='utf-8') as f:
        return [ln.strip() for ln in f if ln.strip()]


def _load_flag(ds: dict) -> str:
    """The colour flag the dataset's LoadImageFromFile decodes with."""
    for step in ds.get('pipeline') or ():
        if isinstance(step, dict) and step.get('type') == 'LoadImageFromFile':
            return step.get('color_type', 'color')
    return 'color'


def _voc_files(ds: dict, ann: str):
    """(image, annotation XML) per id of a VOC/XML split list."""
    root = ds.get('data_root') or ''
    sub = _join(root, (ds.get('data_prefix') or {}).get('sub_data_root', ''))
    img_dir = osp.join(sub, ds.get('img_subdir', 'JPEGImages'))
    xml_dir = osp.join(sub, ds.get('ann_subdir', 'Annotations'))
    for img_id in _lines(ann):
        yield (osp.join(img_dir, f'{img_id}.jpg'),
               osp.join(xml_dir, f'{img_id}.xml'), None)


def _seg_files(ds: dict, ann: str):
    """(image, None, label map) per name of an mmseg split list."""
    root = ds.get('data_root') or ''
    prefix = ds.get('data_prefix') or {}
    img_dir = _join(root, prefix.get('img_path', ''))
    seg_dir = _join(root, prefix.get('seg_map_path', ''))
    img_suffix = ds.get('img_suffix', '.jpg')
    seg_suffix = ds.get('seg_map_suffix', '.png')
    for name in _lines(ann):
        seg = osp.join(seg_dir, name + seg_suffix) \
            if prefix.get('seg_map_path') else None
        yield osp.join(img_dir, name + img_suffix), None, seg


def _cls_files(ds: dict, ann: str):
    """(image, None, None) per line ``relative/path label`` of an
    mmpretrain CustomDataset list."""
    root = ds.get('data_root') or ''
    prefix = ds.get('data_prefix') or ''
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path', '')
    img_dir = _join(root, prefix)
    for line in _lines(ann):
        yield osp.join(img_dir, line.rsplit(' ', 1)[0]), None, None


#: dataset type -> the files each entry of its split list names
LISTED_FILES = {'VOCDataset': _voc_files, 'XMLDataset': _voc_files,
                'BaseSegDataset': _seg_files, 'PascalVOCDataset': _seg_files,
                'CustomDataset': _cls_files}


def _check_xml(path: str, ann: str) -> None:
    if not osp.isfile(path):
        raise MissingFileError(
            f'annotation {path} not found (listed in {ann}): add it or drop '
            'its id from the list')
    try:
        ET.parse(path)
    except ET.ParseError as err:
        raise DataError(
            f'annotation {path} is not valid XML ({err}): fix or regenerate '
            f'it, or drop its id from {ann}') from None


def _image_bands(path: str, ann: str, what: str) -> int:
    """Bands of the image file at ``path`` (its header only is read)."""
    from PIL import Image, UnidentifiedImageError
    if not osp.isfile(path):
        raise MissingFileError(
            f'{what} {path} not found (listed in {ann}): add it or drop its '
            'entry from the list')
    try:
        with Image.open(path) as im:
            mode = im.mode
    except (UnidentifiedImageError, OSError, ValueError) as err:
        reason = str(err).split(' (')[0] or type(err).__name__
        raise DataError(
            f'{what} {path} cannot be read ({reason}): replace it with a '
            f'valid image, or drop its entry from {ann}') from None
    return _BANDS.get(mode, 3)


def _check_image(path: str, ann: str, flag: str, channels: int) -> None:
    bands = _image_bands(path, ann, 'image')
    loaded = {'color': 3, 'grayscale': 1}.get(flag, bands)
    if loaded != channels:
        raise DataError(
            f'image {path} has {bands} channel(s) and is loaded with '
            f"color_type={flag!r}, but the model takes {channels}: convert "
            "it, or load with color_type='color' (3 channels)")


def _check_label_map(path: str, ann: str) -> None:
    bands = _image_bands(path, ann, 'label map')
    if bands != 1:
        raise DataError(
            f'label map {path} has {bands} channels: mmseg needs one channel '
            "of class indices (a palette 'P' or grayscale 'L' PNG); map its "
            'colours to class indices')


def check_data_files(cfg, channels: Optional[int] = None) -> int:
    """Open every file the split lists of ``cfg``'s dataloaders name.

    Checks that each annotation XML parses, each image's header can be read
    and decodes to the channels the model takes, and each segmentation label
    map has one channel; the first bad file ends it with an error that names
    it. Only headers are read (0.13 ms a file on the demo data, see the
    README); dataset types not in
    :data:`LISTED_FILES`, and datasets without a split list, are skipped.

    Args:
        channels: channels the model takes; default the length of the
            config's ``data_preprocessor.mean``, else 3.

    Returns:
        The number of files checked.
    """
    if channels is None:
        pre = cfg.get('data_preprocessor') or \
            (cfg.get('model') or {}).get('data_preprocessor') or {}
        channels = len(pre.get('mean') or (0, 0, 0))
    checked, seen = 0, set()
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not loader:
            continue
        for ds in _leaf_datasets(loader.get('dataset')):
            listed = LISTED_FILES.get(str(ds.get('type', '')))
            if listed is None or not ds.get('ann_file'):
                continue
            ann = _join(ds.get('data_root') or '', ds['ann_file'])
            if not osp.isfile(ann) or ann in seen:
                continue  # a missing list is check_data_root's to report
            seen.add(ann)
            if not _lines(ann):
                raise DataError(f'split list {ann} ({name}) is empty: it '
                                'must name the images to use, one a line')
            flag = _load_flag(ds)
            for img, xml, seg in listed(ds, ann):
                _check_image(img, ann, flag, channels)
                checked += 1
                if xml is not None:
                    _check_xml(xml, ann)
                    checked += 1
                if seg is not None:
                    _check_label_map(seg, ann)
                    checked += 1
    return checked
