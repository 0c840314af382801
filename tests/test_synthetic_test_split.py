"""The synthetic VOC generator's extra test split: drawn from its own seed
(and, if asked, another family of images), it leaves train and val byte
for byte as they were."""
import hashlib
import os
import os.path as osp

import pytest

from fastsnn_mm.datasets import generate_synthetic_voc


def _hashes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.sha256(
                    f.read()).hexdigest()
    return out


def _lines(root, *parts):
    with open(osp.join(root, *parts)) as f:
        return f.read().split()


@pytest.fixture(scope='module')
def trees(tmp_path_factory):
    """The same train / val without and with a test split of each family."""
    roots = {}
    for name, kw in (('plain', {}),
                     ('zero', dict(num_test=0, test_family='other')),
                     ('same', dict(num_test=4)),
                     ('other', dict(num_test=4, test_seed=7,
                                    test_family='other'))):
        root = str(tmp_path_factory.mktemp(name))
        truth = generate_synthetic_voc(root, 6, 3, seed=2, size=48, **kw)
        roots[name] = (root, truth)
    return roots


#: what a test split of its own rewrites (the configs' test loaders read
#: these); everything else stays byte for byte
TEST_FILES = ('VOC2007/ImageSets/Main/test.txt',
              'VOC2007/ImageSets/Segmentation/test.txt',
              'classification/meta/test.txt', 'classification/test/')


def test_without_a_test_split_the_test_lists_repeat_val(trees):
    assert _hashes(trees['zero'][0]) == _hashes(trees['plain'][0])
    root = trees['plain'][0]
    for folder in ('Main', 'Segmentation'):
        assert _lines(root, 'VOC2007', 'ImageSets', folder, 'test.txt') == \
            _lines(root, 'VOC2007', 'ImageSets', folder, 'val.txt')
    assert _lines(root, 'classification', 'meta', 'test.txt') == \
        _lines(root, 'classification', 'meta', 'val.txt')
    hashes = _hashes(root)
    val = {k[len('classification/val/'):]: v for k, v in hashes.items()
           if k.startswith('classification/val/')}
    test = {k[len('classification/test/'):]: v for k, v in hashes.items()
            if k.startswith('classification/test/')}
    assert val and test == val


@pytest.mark.parametrize('name', ['same', 'other'])
def test_test_split_is_its_own_and_train_val_stay(trees, name):
    plain_root, plain = trees['plain']
    root, truth = trees[name]
    before, after = _hashes(plain_root), _hashes(root)
    changed = {k for k in before if after.get(k) != before[k]}
    assert 'VOC2007/ImageSets/Main/test.txt' in changed
    assert all(k.startswith(TEST_FILES) for k in changed), changed
    assert truth['train'] == plain['train'] and truth['val'] == plain['val']
    test_ids = [r['img_id'] for r in truth['test']]
    assert len(test_ids) == 4
    added = set(after) - set(before)  # the test images and their crops
    assert added and all(k.startswith(TEST_FILES) or any(
        i in k for i in test_ids) for k in added), added
    for parts in (('Main', 'test.txt'), ('Segmentation', 'test.txt')):
        assert _lines(root, 'VOC2007', 'ImageSets', *parts) == test_ids
    seen = {r['img_id'] for s in ('train', 'val') for r in truth[s]}
    assert not seen & set(test_ids)
    crops = _lines(root, 'classification', 'meta', 'test.txt')[::2]
    assert crops and all(c.split('/')[1][:6] in test_ids for c in crops)


def test_other_seed_and_family_draw_other_images(trees):
    same = trees['same'][0]
    other = trees['other'][0]
    a, b = _hashes(same), _hashes(other)
    test_images = [k for k in a if k.startswith('VOC2007/JPEGImages/')
                   and k[-10:-4] in {r['img_id']
                                     for r in trees['same'][1]['test']}]
    assert test_images and all(a[k] != b[k] for k in test_images)


def test_bad_test_split_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match='test_family'):
        generate_synthetic_voc(str(tmp_path), 2, 1, size=32, num_test=1,
                               test_family='cartoon')
    with pytest.raises(ValueError, match='num_test'):
        generate_synthetic_voc(str(tmp_path), 2, 1, size=32, num_test=-1)
