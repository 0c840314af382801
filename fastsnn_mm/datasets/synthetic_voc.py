"""Deterministic synthetic shapes data in PASCAL VOC layout.

Real VOC is large and often absent; these small images of coloured shapes on
textured backgrounds let detection, segmentation and classification configs
train and test end to end with the stock mm datasets. One generator writes
all three views from the same objects, so their labels always agree.

Class names and palette are read from
``configs/_base_/datasets/synthetic_voc_metainfo.py``: that file is the one
source of truth, inherited by the dataset configs and used here.
"""
import glob
import io
import os
import os.path as osp
import shutil
import tempfile
import xml.etree.ElementTree as ET
from functools import lru_cache
from typing import Dict, List

import cv2
import numpy as np
from PIL import Image

METAINFO_FILE = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    '_base_', 'datasets', 'synthetic_voc_metainfo.py')
MIN_SIZE = 32
#: how the images of a split are drawn (see :func:`render_image`)
FAMILIES = ('default', 'other')
CROP_SIZE = 32
JPEG_QUALITY = 95


@lru_cache(maxsize=None)
def synthetic_metainfo() -> Dict[str, tuple]:
    """Class names and palettes from the shared metainfo config file."""
    if not osp.isfile(METAINFO_FILE):
        raise FileNotFoundError(
            f'{METAINFO_FILE} not found: fastsnn_mm must run from a source '
            'checkout (pip install -e .) to find its configs')
    from mmengine import Config
    cfg = Config.fromfile(METAINFO_FILE)
    return dict(
        classes=tuple(cfg.synthetic_classes),
        palette=tuple(tuple(c) for c in cfg.synthetic_palette),
        seg_classes=tuple(cfg.synthetic_seg_classes),
        seg_palette=tuple(tuple(c) for c in cfg.synthetic_seg_palette))


def __getattr__(name):
    # CLASSES / PALETTE are read lazily so importing never touches the disk.
    if name in ('CLASSES', 'PALETTE'):
        return synthetic_metainfo()[name.lower()]
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def _unit_polygon(name: str) -> np.ndarray:
    """Outline of a shape inside the unit box centred at the origin."""
    if name == 'circle':
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return 0.5 * np.stack([np.cos(t), np.sin(t)], 1)
    if name == 'square':
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.5
    if name == 'triangle':
        t = np.pi / 2 + np.array([0, 2, 4]) * np.pi / 3
        return 0.5 * np.stack([np.cos(t), -np.sin(t)], 1)
    if name == 'cross':
        a, b = 0.5, 0.17
        return np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b],
                         [b, a], [-b, a], [-b, b], [-a, b], [-a, -b],
                         [-b, -b]])
    raise ValueError(f'unknown shape {name!r}: the generator draws circle, '
                     'square, triangle and cross')


def _background(rng, size: int) -> np.ndarray:
    """Muted low-frequency texture plus pixel noise (float RGB)."""
    base = rng.uniform(70, 170) + rng.uniform(-20, 20, 3)
    blobs = cv2.resize(rng.normal(0, 22, (6, 6, 3)), (size, size),
                       interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size]
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.05, 0.3)
    stripes = rng.uniform(0, 10) * np.sin(
        freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    noise = rng.normal(0, 7, (size, size, 3))
    return base + blobs + stripes[..., None] + noise


def _tiled_background(rng, size: int) -> np.ndarray:
    """The ``'other'`` family's backgrounds: a coarse grid of grey tiles of
    random brightness, a diagonal gradient and stronger pixel noise (float
    RGB); nothing of the default family's soft blobs and stripes."""
    tiles = int(rng.integers(3, 9))
    grid = rng.uniform(50, 190, (tiles, tiles, 1)) + rng.uniform(-12, 12, 3)
    img = cv2.resize(grid, (size, size), interpolation=cv2.INTER_NEAREST)
    yy, xx = np.mgrid[0:size, 0:size]
    gradient = rng.uniform(-40, 40) * (xx + yy) / (2 * size)
    noise = rng.normal(0, 12, (size, size, 3))
    return img + gradient[..., None] + noise


def _vivid_colour(rng, avoid: np.ndarray) -> np.ndarray:
    """A saturated RGB colour far enough from the background mean."""
    for _ in range(20):
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(150, 256),
                          rng.integers(140, 256)]]])
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(float)
        if np.linalg.norm(rgb - avoid) > 90:
            break
    return rgb


def _place(rng, name: str, size: int, family: str = 'default'):
    """Random scale, rotation and position of one shape: int32 polygon.

    The ``'other'`` family draws smaller and larger shapes (0.12-0.55 of
    the image) stretched by up to 25 % along one axis before rotating.
    """
    lo_side, hi_side = (0.15, 0.45) if family == 'default' else (0.12, 0.55)
    side = rng.uniform(lo_side, hi_side) * size
    angle = rng.uniform(-np.pi, np.pi) if name != 'square' else \
        rng.uniform(-0.35, 0.35)
    rot = np.array([[np.cos(angle), -np.sin(angle)],
                    [np.sin(angle), np.cos(angle)]])
    unit = _unit_polygon(name)
    if family != 'default':
        unit = unit * np.array([rng.uniform(0.8, 1.25), 1.0])
    pts = unit @ rot.T * side
    lo, hi = pts.min(0), pts.max(0)
    centre = rng.uniform(-lo, size - 1 - hi)
    return np.round(pts + centre).astype(np.int32)


def render_image(rng, size: int, classes, next_label, max_objects=4,
                 family='default'):
    """One image: (RGB uint8, label mask, instance list).

    ``classes`` are shape names; ``next_label()`` picks the next class index
    and mask value ``i + 1`` marks class ``i``. ``family``: ``'default'``
    (what every config trains on) or ``'other'`` (tiled backgrounds,
    stretched shapes painted with two-tone stripes: the same classes drawn
    another way, for a test split no model has seen the like of).

    Shapes are painted in order; a new shape may hide at most a quarter of
    any earlier one, so every object stays recognisable. Boxes are the
    visible extent, 0-based inclusive ``(x1, y1, x2, y2)``.
    """
    if family not in FAMILIES:
        raise ValueError(f'unknown image family {family!r}: use one of '
                         f'{FAMILIES}')
    img = _background(rng, size) if family == 'default' else \
        _tiled_background(rng, size)
    mask = np.zeros((size, size), np.uint8)
    inst = np.zeros((size, size), np.int32)
    placed, areas = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = next_label()
        for _ in range(20):
            shape = np.zeros_like(mask)
            cv2.fillPoly(shape, [_place(rng, classes[label], size, family)],
                         1)
            left = np.bincount(inst[shape == 0], minlength=len(placed) + 1)
            if (left[1:] >= 0.75 * np.array(areas)).all():
                break
        else:
            continue
        sel = shape > 0
        colour = _vivid_colour(rng, img[sel].mean(0))
        if family == 'default':
            ramp = np.linspace(-15, 15, size)[None, :, None] * \
                rng.choice([-1, 1])
        else:  # two tones in stripes across the shape
            yy, xx = np.mgrid[0:size, 0:size]
            period = rng.uniform(4, 12)
            ramp = 25 * np.sign(np.sin((xx + yy) * np.pi / period))[
                ..., None]
        paint = colour + ramp + rng.normal(0, 5, img.shape)
        img[sel] = paint[sel]
        mask[sel] = label + 1
        placed.append(label)
        areas.append(int(sel.sum()))
        inst[sel] = len(placed)
    objects = []
    for k, label in enumerate(placed, 1):
        ys, xs = np.nonzero(inst == k)
        objects.append(dict(label=label, name=classes[label],
                            bbox=(int(xs.min()), int(ys.min()),
                                  int(xs.max()), int(ys.max()))))
    return np.clip(img, 0, 255).astype(np.uint8), mask, objects


def _voc_xml(img_id: str, size: int, objects) -> bytes:
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'VOC2007'
    ET.SubElement(root, 'filename').text = f'{img_id}.jpg'
    src = ET.SubElement(root, 'source')
    ET.SubElement(src, 'database').text = 'fastsnn-mm synthetic shapes'
    sz = ET.SubElement(root, 'size')
    for key, val in (('width', size), ('height', size), ('depth', 3)):
        ET.SubElement(sz, key).text = str(val)
    ET.SubElement(root, 'segmented').text = '1'
    for obj in objects:
        node = ET.SubElement(root, 'object')
        ET.SubElement(node, 'name').text = obj['name']
        ET.SubElement(node, 'pose').text = 'Unspecified'
        ET.SubElement(node, 'truncated').text = '0'
        ET.SubElement(node, 'difficult').text = '0'
        box = ET.SubElement(node, 'bndbox')
        # VOC boxes are 1-based inclusive pixel indices.
        for key, val in zip(('xmin', 'ymin', 'xmax', 'ymax'), obj['bbox']):
            ET.SubElement(box, key).text = str(val + 1)
    ET.indent(root)
    return ET.tostring(root, encoding='utf-8') + b'\n'


def _png_mask(mask: np.ndarray, palette) -> bytes:
    im = Image.fromarray(mask)
    flat = [0] * 768
    for i, rgb in enumerate(palette):
        flat[3 * i:3 * i + 3] = rgb
    flat[765:768] = (255, 255, 255)
    im.putpalette(flat)
    buf = io.BytesIO()
    im.save(buf, format='PNG')
    return buf.getvalue()


def _crop(img: np.ndarray, bbox) -> np.ndarray:
    """Square crop around a box with a margin, resized to CROP_SIZE."""
    x1, y1, x2, y2 = bbox
    half = int(round(max(x2 - x1, y2 - y1) * 0.6)) + 2
    pad = img.shape[0]  # reflect-pad so crops near the border stay square
    big = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    cx, cy = (x1 + x2) // 2 + pad, (y1 + y2) // 2 + pad
    patch = big[cy - half:cy + half, cx - half:cx + half]
    return cv2.resize(patch, (CROP_SIZE, CROP_SIZE),
                      interpolation=cv2.INTER_AREA)


def _write(path: str, data: bytes) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def _encode(ext: str, rgb: np.ndarray) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if ext == '.jpg' else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    assert ok, f'cv2 could not encode {ext}'
    return buf.tobytes()


def generate_synthetic_voc(out_dir: str, num_train: int, num_val: int,
                           seed: int = 0, size: int = 160,
                           progress: bool = False, num_test: int = 0,
                           test_seed: int = None,
                           test_family: str = 'default'
                           ) -> Dict[str, List[dict]]:
    """Write the synthetic tree under ``out_dir``; return its ground truth.

    Returns ``{'train': [...], 'val': [...]}`` with one dict per image:
    ``img_id`` and ``objects`` (``label``, ``name``, 0-based inclusive
    ``bbox``). The same arguments give byte-identical files.

    Without ``num_test`` the ``test`` lists (VOC Main and Segmentation,
    ``classification/meta/test.txt`` with its crops in
    ``classification/test``) repeat the val split. With ``num_test``, a
    test split of its own follows: ``num_test`` images drawn from
    ``test_seed`` (default ``seed + 1000``) in ``test_family`` (see
    :func:`render_image`), listed as ``test`` (and ``classification/test``)
    and in the returned ``'test'``; nothing tuned or trained on the train
    or val split has seen them. Train and val stay byte-identical to a run
    without a test split.

    Nothing half-written is left under ``out_dir``: the tree is written
    into a hidden ``.partial-*`` folder beside its final place and its
    ``VOC2007`` and ``classification`` folders replace the old ones only
    once every file is there (an interrupted run leaves the old data as it
    was; its partial folder is removed by the next run).
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f'need at least one train and one val image, got '
                         f'num_train={num_train}, num_val={num_val}')
    if num_test < 0 or test_family not in FAMILIES:
        raise ValueError(f'need num_test >= 0 and test_family in {FAMILIES},'
                         f' got num_test={num_test}, '
                         f'test_family={test_family!r}')
    if size < MIN_SIZE:
        raise ValueError(f'image size must be >= {MIN_SIZE} px, got {size}')
    meta = synthetic_metainfo()
    classes = meta['classes']
    for name in classes:
        _unit_polygon(name)  # fails early on a class it cannot draw
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    for stale in glob.glob(osp.join(out_dir, PARTIAL + '*')):
        shutil.rmtree(stale, ignore_errors=True)
    work = tempfile.mkdtemp(prefix=PARTIAL, dir=out_dir)
    try:
        test = None if not num_test else (
            num_test, np.random.default_rng(
                seed + 1000 if test_seed is None else test_seed),
            test_family)
        truth = _generate(work, num_train, num_val, rng, classes, meta,
                          size, progress, test)
        _publish(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return truth


#: prefix of the hidden folder a tree is written into before it is moved
PARTIAL = '.partial-'


def _publish(work: str, out_dir: str) -> None:
    """Move the finished folders of ``work`` into ``out_dir``, each
    replacing its old version by two renames."""
    for name in sorted(os.listdir(work)):
        dst = osp.join(out_dir, name)
        old = None
        if osp.exists(dst):
            old = tempfile.mkdtemp(prefix=PARTIAL + 'old-', dir=out_dir)
            os.replace(dst, osp.join(old, name))
        os.replace(osp.join(work, name), dst)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _generate(out_dir, num_train, num_val, rng, classes, meta, size,
              progress, test=None):
    """``test``: None, or (images, generator, family) of a test split."""
    def label_deck(gen):
        deck: List[int] = []

        def next_label() -> int:
            # Draw labels from shuffled decks so class counts stay balanced.
            if not deck:
                deck.extend(gen.permutation(len(classes)).tolist())
            return deck.pop()
        return next_label
    # (split, images, generator, family, labels)
    shared = label_deck(rng)
    splits = [('train', num_train, rng, 'default', shared),
              ('val', num_val, rng, 'default', shared)]
    if test is not None:
        count, gen, family = test
        splits.append(('test', count, gen, family, label_deck(gen)))

    voc = osp.join(out_dir, 'VOC2007')
    cls_root = osp.join(out_dir, 'classification')
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(sum(split[1] for split in splits))
    truth: Dict[str, List[dict]] = {}
    # the configs' test loaders read the test lists: without a test split
    # of its own they list (and the crops copy) the val split
    crop_dirs = dict(train=('train', ), val=('val', ), test=('test', ))
    if test is None:
        crop_dirs['val'] = ('val', 'test')
    index = 0
    for split, count, gen, family, next_label in splits:
        records, cls_lines = [], []
        for _ in range(count):
            index += 1
            img_id = f'{index:06d}'
            img, mask, objects = render_image(gen, size, classes, next_label,
                                              family=family)
            _write(osp.join(voc, 'JPEGImages', f'{img_id}.jpg'),
                   _encode('.jpg', img))
            _write(osp.join(voc, 'Annotations', f'{img_id}.xml'),
                   _voc_xml(img_id, size, objects))
            _write(osp.join(voc, 'SegmentationClass', f'{img_id}.png'),
                   _png_mask(mask, meta['seg_palette']))
            for k, obj in enumerate(objects):
                rel = f"{obj['name']}/{img_id}_{k}.png"
                crop = _encode('.png', _crop(img, obj['bbox']))
                for folder in crop_dirs[split]:
                    _write(osp.join(cls_root, folder, rel), crop)
                cls_lines.append(f"{rel} {obj['label']}")
            records.append(dict(img_id=img_id, objects=objects))
            if bar is not None:
                bar.update()
        truth[split] = records
        for folder in crop_dirs[split]:
            _write(osp.join(cls_root, 'meta', f'{folder}.txt'),
                   ''.join(line + '\n' for line in cls_lines).encode())
    # Split lists; VOC-style tools expect a test split: without one of its
    # own it is the val split.
    lists = dict(train=('train', ), val=('val', ), trainval=('train', 'val'),
                 test=('test', ) if test is not None else ('val', ))
    for name, parts in lists.items():
        ids = ''.join(r['img_id'] + '\n' for p in parts for r in truth[p])
        _write(osp.join(voc, 'ImageSets', 'Main', f'{name}.txt'),
               ids.encode())
        _write(osp.join(voc, 'ImageSets', 'Segmentation', f'{name}.txt'),
               ids.encode())
    if bar is not None:
        print()
    return truth
