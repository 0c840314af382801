"""Synthetic VOC data: the stock mm datasets read back what was generated."""
import hashlib
import os
import os.path as osp
import runpy
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from mmengine import Config
from mmengine.registry import DefaultScope
from PIL import Image

from fastsnn_mm.datasets import (
    check_data_root,
    generate_synthetic_voc,
    synthetic_metainfo,
)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG_DIR = osp.join(REPO, 'configs', '_base_', 'datasets')
CLI = osp.join(REPO, 'tools', 'dataset_converters', 'make_synthetic_voc.py')
SIZE = 96


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic_voc'))
    truth = generate_synthetic_voc(root, 14, 6, seed=0, size=SIZE)
    return root, truth


def _config(name, data_root=None):
    cfg = Config.fromfile(osp.join(CFG_DIR, name))
    if data_root is not None:
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[key]['dataset']['data_root'] = data_root
    return cfg


def _build(scope, dataset_cfg):
    """Build a dataset with its package's registries as default scope."""
    import importlib
    importlib.import_module(f'{scope}.utils').register_all_modules(False)
    registry = importlib.import_module(f'{scope}.registry').DATASETS
    with DefaultScope.overwrite_default_scope(scope):
        ds = registry.build(dataset_cfg)
        first = ds[0]
    return ds, first


def _hashes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.sha256(
                    f.read()).hexdigest()
    return out


def test_objects_are_balanced_and_sized(synthetic):
    _, truth = synthetic
    classes = synthetic_metainfo()['classes']
    assert len(classes) >= 4
    objects = [o for s in truth.values() for r in s for o in r['objects']]
    counts = Counter(o['label'] for o in objects)
    assert set(counts) == set(range(len(classes)))
    assert max(counts.values()) - min(counts.values()) <= 4
    for split in truth.values():
        for rec in split:
            assert 1 <= len(rec['objects']) <= 4
    for o in objects:
        x1, y1, x2, y2 = o['bbox']
        assert 0 <= x1 < x2 < SIZE and 0 <= y1 < y2 < SIZE
        assert max(x2 - x1, y2 - y1) + 1 >= 0.1 * SIZE


def test_detection_dataset_matches_truth(synthetic):
    root, truth = synthetic
    cfg = _config('synthetic_voc_det.py', root)
    classes = synthetic_metainfo()['classes']
    for key, split in (('train_dataloader', 'train'),
                       ('val_dataloader', 'val')):
        ds, first = _build('mmdet', cfg[key]['dataset'])
        assert ds.metainfo['classes'] == classes
        assert ds.metainfo.get('dataset_type') is None  # our names in tables
        assert len(ds) == len(truth[split])
        for i, rec in enumerate(truth[split]):
            info = ds.get_data_info(i)
            assert info['img_id'] == rec['img_id']
            got = [(x['bbox_label'], tuple(x['bbox'])) for x in
                   info['instances']]
            assert got == [(o['label'], o['bbox']) for o in rec['objects']]
            assert not any(x['ignore_flag'] for x in info['instances'])
        assert first['inputs'].shape[0] == 3
        assert max(first['inputs'].shape[1:]) == 160


def test_segmentation_dataset_matches_truth(synthetic):
    root, truth = synthetic
    cfg = _config('synthetic_voc_seg.py', root)
    ds, first = _build('mmseg', cfg.val_dataloader.dataset)
    assert ds.metainfo['classes'][0] == 'background'
    assert len(ds) == len(truth['val'])
    gt = first['data_samples'].gt_sem_seg.data[0].numpy()
    assert gt.shape == (SIZE, SIZE)
    for i, rec in enumerate(truth['val']):
        mask = np.array(Image.open(ds.get_data_info(i)['seg_map_path']))
        if i == 0:
            # integer class ids
            assert (mask == gt).all()
        assert set(np.unique(mask)) <= set(range(len(ds.metainfo['classes'])))
        for label in {o['label'] for o in rec['objects']}:
            boxes = np.array([o['bbox'] for o in rec['objects']
                              if o['label'] == label])
            ys, xs = np.nonzero(mask == label + 1)
            union = (*boxes[:, :2].min(0), *boxes[:, 2:].max(0))
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == union
    train, _ = _build('mmseg', cfg.train_dataloader.dataset)
    assert len(train) == len(truth['train'])


def test_classification_dataset_matches_truth(synthetic):
    root, truth = synthetic
    cfg = _config('synthetic_voc_cls.py', root)
    assert cfg.data_preprocessor.num_classes == len(
        synthetic_metainfo()['classes'])
    for key, split in (('train_dataloader', 'train'),
                       ('val_dataloader', 'val')):
        ds, first = _build('mmpretrain', cfg[key]['dataset'])
        labels = [o['label'] for r in truth[split] for o in r['objects']]
        assert [ds.get_data_info(i)['gt_label'] for i in range(len(ds))
                ] == labels
        assert tuple(first['inputs'].shape) == (3, 32, 32)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for name, seed in (('a', 3), ('b', 3), ('c', 4)):
        generate_synthetic_voc(str(tmp_path / name), 4, 2, seed=seed, size=64)
    a, b, c = (_hashes(str(tmp_path / n)) for n in 'abc')
    assert a == b
    images = [k for k in a if k.endswith('.jpg')]
    assert len(images) == 6
    assert all(a[k] != c[k] for k in images)


def _cli(*args):
    return subprocess.run([sys.executable, CLI, *args], capture_output=True,
                          text=True, timeout=120)


def _assert_one_line_error(code, stderr, *words):
    assert code == 2, stderr
    assert 'Traceback' not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].count('error:') == 1, stderr
    for word in words:
        assert word in lines[0]


def _main_in_process(capsys, *args):
    """Run the CLI's main() here: a subprocess would re-import mm (slow)."""
    main = runpy.run_path(CLI)['main']
    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code, capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_cli_writes_same_tree_and_keeps_existing_files(tmp_path, capsys):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    code, err = _main_in_process(capsys, '--out', str(out), '--num-train',
                                 '3', '--num-val', '2', '--seed', '5',
                                 '--size', '64')
    assert code == 0, err
    generate_synthetic_voc(str(tmp_path / 'lib'), 3, 2, seed=5, size=64)
    written = _hashes(str(out))
    assert written.pop('keep.txt')
    assert written == _hashes(str(tmp_path / 'lib'))
    # unwritable --out (a path below a regular file) and a too-small size
    _assert_one_line_error(*_main_in_process(
        capsys, '--out', str(out / 'keep.txt' / 'sub'), '--num-train', '2',
        '--num-val', '1'), '--out')
    _assert_one_line_error(*_main_in_process(
        capsys, '--out', str(out), '--num-train', '2', '--num-val', '1',
        '--size', '16'), '--size')


@pytest.mark.parametrize('args,word', [
    (['--num-train', '0', '--num-val', '2'], '--num-train'),
    (['--num-train', '-3', '--num-val', '2'], '--num-train'),
    (['--num-train', '2', '--num-val', '0'], '--num-val'),
    (['--num-train', 'x', '--num-val', '2'], '--num-train'),
])
def test_cli_rejects_bad_counts(tmp_path, args, word):
    # a real process: exit code and stderr exactly as a user sees them
    proc = _cli('--out', str(tmp_path / 'o'), *args)
    _assert_one_line_error(proc.returncode, proc.stderr, word)
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('name', [
    'synthetic_voc_det.py', 'synthetic_voc_seg.py', 'synthetic_voc_cls.py'
])
def test_check_data_root(synthetic, tmp_path, name):
    check_data_root(_config(name, synthetic[0]))
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as err:
        check_data_root(_config(name, missing))
    text = str(err.value)
    assert '\n' not in text
    assert text.startswith(missing) and 'make_synthetic_voc.py' in text


@pytest.mark.parametrize('name,path,layout', [
    ('voc0712_det.py', 'data/VOCdevkit/VOC2007/ImageSets/Main/trainval.txt',
     'data/VOCdevkit/{VOC2007,VOC2012}/{JPEGImages,Annotations,'),
    ('voc12aug_seg.py', 'data/VOCdevkit/VOC2012/ImageSets/Segmentation/'
     'train.txt', 'SegmentationClassAug'),
    ('cifar10_cls.py', 'data/cifar10/cifar-10-batches-py', 'CIFAR-10'),
])
def test_check_data_root_real_configs(tmp_path, monkeypatch, name, path,
                                      layout):
    monkeypatch.chdir(tmp_path)  # relative data roots: surely absent here
    with pytest.raises(FileNotFoundError) as err:
        check_data_root(_config(name))
    text = str(err.value)
    assert text.startswith(path + ' not found') and layout in text
    assert '\n' not in text
