"""One settings object for how an SNN runs: checked once, stored on the
converted model and in SNN checkpoints, restored from them by
tools/test.py, and a command-line value that differs is logged."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, tiny_cls_config
from mmengine.runner import Runner

from fastsnn_mm.engine.snn_checkpoint import save_snn_checkpoint
from fastsnn_mm.errors import BadArgumentError
from fastsnn_mm.spiking.settings import SNNSettings
from fastsnn_mm.spiking.validation import CONFIG

#: tools/test.py options that make the config the tiny trained classifier
TINY = ['model.backbone.base_channels=8', 'model.head.in_channels=64',
        'model.quant.weight.type=uniform', 'model.quant.weight.bits=4']
CONFIG_FILE = 'configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py'


def test_settings_are_checked_once_and_read_like_a_dict():
    s = SNNSettings.checked(5, 'unsigned', spike_dtype='int8')
    assert s['timesteps'] == 5 and s.get('time_chunk') is None
    assert dict(s) == dict(timesteps=5, neuron='unsigned', mode='folded',
                           time_chunk=None, spike_dtype='int8')
    with pytest.raises(BadArgumentError, match='model.snn.spike_dtype'):
        SNNSettings.checked(5, spike_dtype='int4', spelling=CONFIG)
    with pytest.raises(BadArgumentError, match='timesteps'):
        SNNSettings.checked(0)
    with pytest.raises(Exception):
        s.timesteps = 3  # frozen


def test_older_checkpoints_without_spike_dtype_read_as_float32():
    s = SNNSettings.from_saved(dict(timesteps=7, neuron='signed',
                                    mode='folded', time_chunk=None))
    assert s.spike_dtype is None and s.timesteps == 7


@pytest.fixture(scope='module')
def int8_snn_checkpoint(tiny_voc, tmp_path_factory):
    """A tiny classifier (4-bit weights: int8 exact) trained one epoch,
    converted with T=5 and int8 spikes, saved as an SNN checkpoint."""
    work = tmp_path_factory.mktemp('settings')
    cfg = tiny_cls_config(tiny_voc, work)
    cfg.model.quant = dict(bits=3, alpha=2.0,
                           weight=dict(type='uniform', bits=4))
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    model.to_snn(timesteps=5, spike_dtype='int8')
    path = save_snn_checkpoint(model, str(work), epoch=1, iteration=1)
    saved = torch.load(path, map_location='cpu', weights_only=False)
    assert saved['meta']['snn'] == dict(timesteps=5, neuron='signed',
                                        mode='folded', time_chunk=None,
                                        spike_dtype='int8')
    return path


def _test_tool(path, tiny_voc, tmp_path, *extra):
    out = subprocess.run(
        [sys.executable, 'tools/test.py', CONFIG_FILE, path, '--snn',
         '--work-dir', str(tmp_path), *extra, '--cfg-options',
         f'test_dataloader.dataset.data_root={tiny_voc}'] + TINY,
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [[c.strip() for c in line.strip('|').split('|')]
            for line in out.stdout.splitlines()
            if line.startswith('| model') or line.startswith('| SNN')]
    return dict(zip(rows[0], rows[1])), out.stdout + out.stderr


def test_snn_checkpoint_reloads_with_its_timesteps_and_spike_dtype(
        int8_snn_checkpoint, tiny_voc, tmp_path):
    row, log = _test_tool(int8_snn_checkpoint, tiny_voc, tmp_path / 'a')
    assert row['T'] == '5' and row['spike_dtype'] == 'int8'
    assert 'instead of the checkpoint' not in log
    # a differing command-line value wins, and the log says so once
    row, log = _test_tool(int8_snn_checkpoint, tiny_voc, tmp_path / 'b',
                          '--timesteps', '3')
    assert row['T'] == '3' and row['spike_dtype'] == 'int8'
    assert log.count("timesteps=3 from the command line instead of the "
                     "checkpoint's timesteps=5") == 1
    assert osp.exists(int8_snn_checkpoint)


def _conv_net(weight_bits=None):
    from torch import nn

    from fastsnn_mm.quantization import QuantReLU, quantize_model
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), QuantReLU(bits=3),
                        nn.Conv2d(8, 8, 3, padding=1), QuantReLU(bits=3),
                        nn.Conv2d(8, 2, 1))
    if weight_bits:
        quantize_model(net, bits=3, weight=dict(type='uniform',
                                                bits=weight_bits))
    return net.eval()


def test_auto_spike_dtype_picks_int8_where_exact_and_says_why(monkeypatch):
    from fastsnn_mm.spiking import convert_to_snn
    from fastsnn_mm.spiking.low_precision import auto, pick_spike_dtype
    said = []
    monkeypatch.setattr(auto, 'print_log', lambda msg, **kw: said.append(msg))
    # weights on a 4-bit grid: int8 is exact integer arithmetic
    snn = convert_to_snn(_conv_net(weight_bits=4), spike_dtype='auto')
    assert snn.settings.spike_dtype == 'int8'
    assert "spike_dtype='auto' -> int8" in said[-1]
    # float weights: int8 would round; without allow_rounding float32
    snn = convert_to_snn(_conv_net(), spike_dtype='auto')
    assert snn.settings.spike_dtype is None
    assert '0 of 2 layers have weights on an integer grid' in said[-1]
    # allowed to round: bfloat16 exactly where the device runs it fast
    monkeypatch.setattr(auto, 'slow_path_reason',
                        lambda device, dtype: None)
    assert pick_spike_dtype(_conv_net(), allow_rounding=True)[0] == \
        'bfloat16'
    monkeypatch.setattr(auto, 'slow_path_reason',
                        lambda device, dtype: 'no fast path')
    picked, why = pick_spike_dtype(_conv_net(), allow_rounding=True)
    assert picked is None and 'no fast path' in why
