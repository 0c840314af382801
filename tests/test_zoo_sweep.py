"""A fixed sample of the mm model zoo sweep
(tools/analysis_tools/sweep_model_zoo.py): stock configs of the installed
packages made Fast-SNNs the README way, with the outcome each must get."""
import pytest

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
