"""A fixed sample of the mm model zoo sweep
(tools/analysis_tools/sweep_model_zoo.py): stock configs of the installed
packages made Fast-SNNs the README way, with the outcome each must get."""
import os.path as osp
import sys
import time

import pytest
from conftest import REPO

from fastsnn_mm.analysis.zoo_sweep import (
    check_model_cfg,
    fast_snn_model_cfg,
    refusal_kinds,
    zoo_configs,
)

#: package, config (under the package's configs), outcome, detail part
SAMPLE = [
    ('mmpretrain', 'resnet/resnet18_8xb32_in1k.py', 'checked equal', ''),
    ('mmseg', 'fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py',
     'checked equal', ''),
    ('mmpretrain', 'mobilenet_v3/mobilenet-v3-small_8xb128_in1k.py',
     'refused before QAT', 'HSigmoid'),
]


def _config(package, rel):
    from mmengine.config import Config
    path = [p for p in zoo_configs(package) if p.endswith('/' + rel)]
    assert len(path) == 1, rel
    return Config.fromfile(path[0])


@pytest.mark.parametrize('package, rel, outcome, detail', SAMPLE)
def test_zoo_sample_gets_its_outcome(package, rel, outcome, detail,
                                     one_thread):
    model = fast_snn_model_cfg(package, _config(package, rel))
    assert model['quant'] == dict(bits=3, make_convertible=True)
    record = check_model_cfg(package, model, timeout=120)
    assert record['outcome'] == outcome, record
    assert detail in record['detail']
    if outcome == 'checked equal':
        assert 'wrong' not in record['detail']


def test_two_stage_detector_is_not_covered():
    cfg = _config('mmdet', 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    assert fast_snn_model_cfg('mmdet', cfg) is None


def test_refusal_kinds_reads_the_refused_types():
    msg = ('make_convertible: 2 module(s) have no spiking substitute:\n'
           '  backbone.se.gate: Sigmoid -> a sigmoid gate ...\n'
           '  neck.norm: GroupNorm -> normalises ...')
    assert refusal_kinds(msg) == 'Sigmoid, GroupNorm'


def _spin_or_sleep(spin):
    def settle(*args, **kwargs):
        if spin:
            while True:  # CPU-bound until the limit interrupts it
                sum(range(1000))
        time.sleep(2.5)  # waits longer than the limit, on no CPU
        raise ValueError('settled after sleeping')
    return settle


@pytest.mark.parametrize('spin', [True, False])
def test_time_limit_counts_cpu_seconds(spin, monkeypatch, one_thread):
    """The limit is CPU time: a check that burns it is cut short, one that
    waits (a busy machine) is not."""
    from fastsnn_mm.analysis import zoo_sweep
    monkeypatch.setattr(zoo_sweep, 'settle_untrained', _spin_or_sleep(spin))
    model = fast_snn_model_cfg(
        'mmpretrain', _config('mmpretrain', 'resnet/resnet18_8xb32_in1k.py'))
    # imports and registry set-up done first, outside the limit
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmpretrain')
    MODELS.build(model)
    started = time.process_time()
    record = check_model_cfg('mmpretrain', model, timeout=2)
    assert record['outcome'] == 'run failed', record
    if spin:
        assert record['detail'] == 'over 2 CPU s'
        assert time.process_time() - started >= 1.8  # timer granularity
    else:
        assert 'settled after sleeping' in record['detail']


def test_resumed_sweep_reuses_a_model_checked_before():
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
    from sweep_model_zoo import reusable_results
    records = [
        dict(config='a.py', model='k1', outcome='checked equal',
             detail='3 exact', seconds=4.0, path='/a.py'),
        dict(config='b.py', model='k1', outcome='wrong', detail='x'),
        dict(config='c.py', model='k2', outcome='conversion failed',
             detail='over 60 s'),
        dict(config='d.py', outcome='not covered', detail='FasterRCNN')]
    got = reusable_results(records)
    assert got == {'k1': dict(outcome='checked equal', detail='3 exact',
                              seconds=4.0, checked_with='a.py')}
