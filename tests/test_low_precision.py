"""Spike-reading layers in bfloat16 / float16 / int8 (``spike_dtype``).

What must hold: spikes are exact in every dtype, so the low-precision SNN
fires as the float32 SNN wherever the weights' rounding cannot move a
membrane across a threshold (hand-built: weights and thresholds powers of
two, sums small); int8 on weights quantized to a dyadic grid equals the
float32 SNN bit for bit; the option travels through configs and
``tools/test.py``; checkpoints, re-conversion and autograd are untouched.
"""
import copy
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, tiny_cls_config
from float_order import assert_close_up_to_ties
from mmengine.runner import Runner
from torch import nn

import fastsnn_mm  # noqa: F401  (registers modules)
from fastsnn_mm import QuantReLU, convert_to_snn, quantize_model
from fastsnn_mm.errors import BadArgumentError
from fastsnn_mm.spiking import IFNeuron
from fastsnn_mm.spiking.fold_bn import FoldedBatchNorm2d
from fastsnn_mm.spiking.low_precision import (
    SpikeInput,
    find_int_grid,
    round_to_int_grid,
    spike_layers,
)
from fastsnn_mm.spiking.low_precision.kernels import onednn_int8_works


class ConvNet(nn.Module):
    """stem (reads the image) -> 3 neurons, two convs reading spikes, a
    pooled readout."""

    def __init__(self, thetas=(1.0, 0.5, 2.0), bits=3):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.act1 = QuantReLU(bits, alpha=thetas[0])
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act2 = QuantReLU(bits, alpha=thetas[1])
        self.conv3 = nn.Conv2d(4, 6, 3, padding=1, stride=2)
        self.act3 = QuantReLU(bits, alpha=thetas[2])
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.act1(self.stem(x))
        x = self.act2(self.conv2(x))
        x = self.act3(self.conv3(x))
        return self.fc(x.mean((2, 3)))


class MLP(nn.Module):
    """Linears reading spikes, the last one straight from a neuron."""

    def __init__(self, thetas=(1.0, 0.25)):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.act1 = QuantReLU(3, alpha=thetas[0])
        self.fc2 = nn.Linear(16, 16)
        self.act2 = QuantReLU(3, alpha=thetas[1])
        self.fc3 = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc3(self.act2(self.fc2(self.act1(self.fc1(x)))))


def _dyadic_(model, step=0.25, top=2, bias_step=1 / 64):
    """Weights of the spike-reading layers in {-top..top} x step, biases
    multiples of bias_step: exact in bfloat16, sums exact in float32."""
    gen = torch.Generator().manual_seed(0)
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and name not in (
                'stem', 'fc1'):
            m.weight.data = torch.randint(-top, top + 1, m.weight.shape,
                                          generator=gen).float() * step
            m.bias.data = torch.randint(-8, 9, m.bias.shape,
                                        generator=gen).float() * bias_step
    return model


def _run(snn, x):
    """The SNN's output and each neuron's outputs (spike x theta) of all
    steps in time order, however the run split them into passes (the
    one-image sizing pass of the CPU plan left out)."""
    seen = {}
    hooks = [n.register_forward_hook(
        lambda mod, args, out: seen.setdefault(mod, []).append(out.clone()))
        for n in snn.modules() if isinstance(n, IFNeuron)]
    with torch.no_grad():
        out = snn(x)
    for h in hooks:
        h.remove()
    batch = x.shape[0]
    return out, [torch.cat([o for o in outs if o.shape[0] % batch == 0])
                 for outs in seen.values()]


def _same_spikes(a, b):
    """Same spikes everywhere; returns whether the outputs are the same
    bits too. Exact where the callers use it: the layers reading spikes
    sum dyadic weights x spikes (exact in float32, bfloat16 and float16
    with float32 accumulation) or integers (int8); the stem reading the
    float image runs the same float32 conv on the same batch in both."""
    (out_a, spikes_a), (out_b, spikes_b) = a, b
    assert len(spikes_a) == len(spikes_b) > 0
    for s, t in zip(spikes_a, spikes_b):
        assert torch.equal(s, t)  # dyadic or integer sums: exact
    return torch.equal(out_a, out_b)


def test_bad_spike_dtype_is_refused_before_conversion():
    net = ConvNet()
    with pytest.raises(BadArgumentError, match="'bfloat16', 'float16'"):
        convert_to_snn(net, spike_dtype='int4')
    assert not any(isinstance(m, IFNeuron) for m in net.modules())


@pytest.mark.float_order
@pytest.mark.parametrize('dtype', ['bfloat16', 'float16'])
@pytest.mark.parametrize('model', ['conv', 'mlp'])
def test_float_spike_dtypes_fire_as_float32_when_weights_are_exact(
        dtype, model):
    net = _dyadic_(ConvNet() if model == 'conv' else MLP())
    x = torch.randn(2, 3, 12, 12) * 2 if model == 'conv' \
        else torch.randn(5, 3, 8) * 2
    ref = _run(convert_to_snn(net, timesteps=7), x)
    low = convert_to_snn(net, timesteps=7, spike_dtype=dtype)
    # outputs of the layers reading spikes are small multiples of
    # 2^-k: exact in the dtype, so even the outputs are the same bits
    assert _same_spikes(ref, _run(low, x))
    reading = ['conv2', 'conv3'] if model == 'conv' else ['fc2', 'fc3']
    assert sorted(spike_layers(low)) == [f'module.{n}' for n in reading]
    assert set(spike_layers(low).values()) == {dtype}


def test_bfloat16_on_float_weights_stays_close():
    """Float weights round in bfloat16 (and so do the conv outputs): the
    SNN moves, a little; what it costs on real models is the benchmark's
    and the demos' question."""
    torch.manual_seed(0)
    net = ConvNet(thetas=(0.7, 0.9, 1.3))
    x = torch.randn(2, 3, 12, 12)
    ref, _ = _run(convert_to_snn(net, timesteps=7), x)
    low, _ = _run(convert_to_snn(net, timesteps=7, spike_dtype='bfloat16'),
                  x)
    assert torch.allclose(low, ref, atol=0.05 * ref.abs().max())


def _apot3(net):
    """3-bit APoT weights everywhere (levels 0, 1/4, 1/2, 1 of alpha =
    1): a dyadic grid, so the float32 SNN's sums are exact too."""
    _dyadic_(net, step=0.25, top=4)
    quantize_model(net, 3, weight=dict(type='apot', bits=3,
                                       first_last_bits=3))
    return net


@pytest.mark.float_order
@pytest.mark.parametrize('model', ['conv', 'mlp'])
def test_int8_on_dyadic_weight_grid_is_bit_for_bit(model):
    net = _apot3(ConvNet() if model == 'conv' else MLP())
    x = torch.randn(3, 3, 10, 10) * 2 if model == 'conv' \
        else torch.randn(4, 5, 8) * 2  # linears on [batch, tokens, C]
    ref = _run(convert_to_snn(net, timesteps=7), x)
    low = convert_to_snn(net, timesteps=7, spike_dtype='int8')
    assert _same_spikes(ref, _run(low, x))  # dyadic: exact in any order
    assert set(spike_layers(low).values()) == {'int8'}


@pytest.mark.float_order
def test_int8_on_uniform_weights_is_exact_integer_arithmetic():
    """4-bit uniform weights (alpha * k / 7) and thresholds that are not
    powers of two: the float32 SNN rounds every product and partial sum,
    int8 sums integers exactly and rounds once (k x scale x theta). What
    differs is that rounding: outputs agree to float32 precision, and
    since int8 is exact, folded, chunked and streaming runs give the same
    spikes. The float32 readout averages 5 x 5 spikes x 1.3 (not dyadic)
    and sums them in the plan's batch shape, so the outputs agree within
    the float bound of those two sums."""
    torch.manual_seed(1)
    net = ConvNet(thetas=(0.7, 0.9, 1.3))
    quantize_model(net, 3, weight=dict(type='uniform', bits=4))
    x = torch.randn(3, 3, 10, 10)
    ref, _ = _run(convert_to_snn(net, timesteps=7), x)
    runs = [_run(convert_to_snn(net, timesteps=7, spike_dtype='int8',
                                **kw), x)
            for kw in (dict(), dict(time_chunk=3), dict(mode='streaming'))]
    assert torch.allclose(runs[0][0], ref, rtol=1e-5, atol=1e-5)
    fc = net.fc  # sum |terms| of the readout: inputs |mean| <= 1.3
    w, b = fc.weight.detach(), fc.bias.detach()
    magnitude = float((w.abs().sum(1) * 1.3 + b.abs()).max())
    for other in runs[1:]:
        _same_spikes(runs[0], other)  # int8: integer sums, exact spikes
        # no ties (the spikes are equal): the mean's 25 terms and the
        # fc's 6 + 1 within the float bound
        assert_close_up_to_ties(other[0], runs[0][0], 25 + 7, magnitude,
                                max_tie_share=0)
    # the float32 SNN's spikes: the same nearly everywhere
    _, spikes = _run(convert_to_snn(net, timesteps=7), x)
    same = [(s == t).float().mean() for s, t in zip(spikes, runs[0][1])]
    assert min(same) > 0.99


def test_int8_leaves_float_weights_in_float32_unless_rounding_is_asked():
    torch.manual_seed(2)
    net = ConvNet()
    x = torch.randn(2, 3, 10, 10)
    ref = _run(convert_to_snn(net, timesteps=7), x)
    exact = convert_to_snn(net, timesteps=7, spike_dtype='int8')
    # all float32, the same plan and batch: the same sums, same bits
    assert _same_spikes(ref, _run(exact, x))
    assert set(spike_layers(exact).values()) == {'float32'}
    assert exact.module.conv2.why_float32 == 'weights on no int8 grid'
    rounded = convert_to_snn(net, timesteps=7, spike_dtype='int8-rounded')
    out, _ = _run(rounded, x)
    assert all(v.startswith('int8 (weights rounded')
               for v in spike_layers(rounded).values())
    assert torch.allclose(out, ref[0], atol=0.05 * ref[0].abs().max())


def test_int_grid_reads_the_quantizers_grids():
    for cfg, steps in [(dict(type='uniform', bits=4), 7),
                       (dict(type='uniform', bits=8), 127),
                       (dict(type='apot', bits=5), 48)]:
        layer = quantize_model(nn.Sequential(nn.Conv2d(8, 8, 3)), 3,
                               weight=dict(cfg, first_last_bits=cfg['bits'])
                               )[0]
        w = layer.quantized_weight().detach()
        grid = find_int_grid(w)
        assert grid is not None, cfg
        assert int(grid.levels.abs().max()) <= steps
        assert torch.allclose(grid.levels * grid.scale.view(-1, 1, 1, 1),
                              w.double(), rtol=1e-6, atol=0)
    # 6-bit APoT needs 224 steps: no int8 grid
    layer = quantize_model(nn.Sequential(nn.Conv2d(16, 16, 3)), 3,
                           weight=dict(type='apot', bits=6,
                                       first_last_bits=6))[0]
    assert find_int_grid(layer.quantized_weight().detach()) is None
    w = torch.randn(4, 9)
    assert find_int_grid(w) is None
    rounded = round_to_int_grid(w)
    assert 0 < rounded.moved <= 0.5 / 127 + 1e-9


@pytest.mark.float_order
@pytest.mark.skipif(not onednn_int8_works(), reason='no oneDNN int8 ops')
def test_onednn_and_float32_emulation_give_the_same_bits():
    from fastsnn_mm.spiking.low_precision import kernels
    from fastsnn_mm.spiking.low_precision.int_grid import IntGrid
    gen = torch.Generator().manual_seed(0)
    theta = torch.tensor([0.3])
    for conv in (nn.Conv2d(8, 8, 3, padding=1, groups=4),
                 nn.Conv2d(8, 6, 3, padding=2, stride=2, dilation=2)):
        levels = torch.randint(-127, 128, conv.weight.shape, generator=gen,
                               dtype=torch.int8)
        grid = IntGrid(levels, torch.rand(levels.shape[0],
                                          dtype=torch.float64))
        x = torch.randint(-1, 2, (3, 8, 9, 9), generator=gen) * theta
        fast, slow = (kernels.prepare_int8(conv, grid, conv.bias, theta,
                                           'cpu', onednn)
                      for onednn in (True, False))
        assert fast.packed is not None and slow.packed is None
        # integer sums, exact in both, then the same rounding
        assert torch.equal(kernels.run(conv, x, fast),
                           kernels.run(conv, x, slow))


@pytest.mark.float_order
def test_checkpoint_keys_reconversion_and_weight_changes():
    net = _apot3(ConvNet())
    x = torch.randn(2, 3, 10, 10)
    plain = convert_to_snn(net, timesteps=7)
    low = convert_to_snn(net, timesteps=7, spike_dtype='int8')
    assert list(low.state_dict()) == list(plain.state_dict())
    _run(low, x)
    # a changed weight (fine-tuning, load_state_dict) is lowered again
    state = {k: v.clone() for k, v in low.state_dict().items()}
    state['module.conv2.weight'] *= 0.5
    low.load_state_dict(state)
    plain.load_state_dict(state)
    assert _same_spikes(_run(plain, x), _run(low, x))  # dyadic: exact
    # converting again (copy or not, other T, fold_bn) starts from plain
    # layers; None undoes the choice
    again = convert_to_snn(low, timesteps=3, spike_dtype='int8',
                           fold_bn=True)
    assert sum(isinstance(m, SpikeInput) for m in again.modules()) == 4
    _run(again, x)
    assert set(spike_layers(again).values()) == {'int8'}
    back = convert_to_snn(low, timesteps=7, copy=False)
    assert not any(isinstance(m, SpikeInput) for m in back.modules())
    assert _same_spikes(_run(plain, x), _run(back, x))  # dyadic: exact


def test_int8_with_bn_folded_uses_the_folded_weights():
    """A BN folded into its conv scales each output channel: the grid is
    per channel, so the folded weights are int8-exact as well."""
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), QuantReLU(3, alpha=1.0),
        nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8),
        QuantReLU(3, alpha=0.5), nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8), QuantReLU(3, alpha=2.0),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    for bn in (net[3], net[6]):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2)
    quantize_model(net, 3, weight=dict(type='uniform', bits=4))
    x = torch.randn(2, 3, 8, 8)
    ref, _ = _run(convert_to_snn(net, timesteps=7, fold_bn=True), x)
    low = convert_to_snn(net, timesteps=7, fold_bn=True, spike_dtype='int8')
    # the BNs pass their input through (their conv folded them), also
    # though the convs they pair with are no children of the model now
    passed = []
    for m in low.modules():
        if isinstance(m, FoldedBatchNorm2d):
            m.register_forward_hook(
                lambda mod, args, out: passed.append(out is args[0]))
    out, _ = _run(low, x)
    assert passed and all(passed)
    assert spike_layers(low) == {'module.2': 'int8', 'module.5': 'int8'}
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_a_copy_before_the_first_call_traces_on_its_own():
    net = _apot3(ConvNet())
    low = convert_to_snn(net, timesteps=7, spike_dtype='int8')
    twin = copy.deepcopy(low)
    x = torch.randn(2, 3, 10, 10)
    _run(twin, x)
    assert set(spike_layers(twin).values()) == {'int8'}
    assert spike_layers(low) == {}  # not called yet
    _run(low, x)
    assert spike_layers(low) == spike_layers(twin)


class Mixed(ConvNet):
    """conv2 reads spikes at one call and halved spikes at another."""

    def forward(self, x):
        spikes = self.act1(self.stem(x))
        y = self.conv2(spikes) + self.conv2(spikes * 0.5)
        return self.fc(self.act3(self.conv3(self.act2(y))).mean((2, 3)))


def test_autograd_and_mixed_inputs_run_float32():
    net = _apot3(ConvNet())
    low = convert_to_snn(net, timesteps=7, spike_dtype='int8')
    x = torch.randn(2, 3, 10, 10)
    ref, _ = _run(convert_to_snn(net, timesteps=7), x)
    out = low(x)  # autograd on: float32, same bits as the float32 SNN
    # the same float32 plan and batch (and dyadic): the same sums
    assert out.requires_grad and torch.equal(out.detach(), ref)
    assert spike_layers(low) == {}
    _run(low, x)  # the trace holds: without autograd, int8
    assert set(spike_layers(low).values()) == {'int8'}
    mixed = convert_to_snn(_apot3(Mixed()), timesteps=7, spike_dtype='int8')
    first, second = _run(mixed, x), _run(mixed, x)
    assert spike_layers(mixed) == {'module.conv2': 'float32',
                                   'module.conv3': 'int8'}
    assert 'fed by a neuron at one call' in mixed.module.conv2.why_float32
    # the same run repeated (and dyadic weights): exact either way
    assert _same_spikes(first, second)


def _mm_classifier(**snn):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    # an earlier test may leave another package's scope as the default
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return _build_classifier(MODELS, snn)


def _build_classifier(MODELS, snn):
    return MODELS.build(dict(
        type='FastSNNImageClassifier',
        backbone=dict(type='QResNet', depth=18, base_channels=8),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=2, in_channels=64),
        quant=dict(bits=3, weight=dict(type='uniform', bits=4)),
        snn=dict(timesteps=3, **snn))).eval()


def test_config_round_trip():
    with pytest.raises(BadArgumentError, match='model.snn.spike_dtype'):
        _mm_classifier(spike_dtype='bf16')
    x = torch.randn(2, 3, 32, 32)
    low, ref = _mm_classifier(spike_dtype='int8'), _mm_classifier()
    ref.load_state_dict(low.state_dict())
    with torch.no_grad():
        outs = [low(x), low(x), ref(x)]
    assert torch.equal(outs[0], outs[1])  # the same run repeated
    assert torch.allclose(outs[0], outs[2], rtol=1e-4, atol=1e-5)
    used = spike_layers(low)
    # every block conv reads spikes; the stem and the head's fc do not
    assert len(used) == 19 and set(used.values()) == {'int8'}
    assert 'backbone.stem.0' not in used and 'head.fc' not in used


#: the tiny classifier of :func:`weight_quantized_qann`, as tool options
TINY_OPTIONS = ['model.backbone.base_channels=8', 'model.head.in_channels=64',
                'model.quant.weight.type=uniform',
                'model.quant.weight.bits=4']


@pytest.fixture(scope='module')
def weight_quantized_qann(tiny_voc, tmp_path_factory):
    """A tiny 3-bit classifier with 4-bit uniform weights (int8 exact)."""
    work = tmp_path_factory.mktemp('wq')
    cfg = tiny_cls_config(tiny_voc, work)
    cfg.model.quant = dict(bits=3, alpha=2.0,
                           weight=dict(type='uniform', bits=4))
    Runner.from_cfg(cfg).train()
    return osp.join(work, 'epoch_1.pth')


def test_tools_test_takes_spike_dtype(tiny_voc, weight_quantized_qann,
                                      tmp_path):
    ckpt = weight_quantized_qann
    # --compare: the QANN checkpoint is loaded before the conversion bakes
    # its quantized weights
    base = [sys.executable, 'tools/test.py',
            'configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py', ckpt,
            '--compare', '--work-dir', str(tmp_path), '--cfg-options',
            f'test_dataloader.dataset.data_root={tiny_voc}'] + TINY_OPTIONS
    out = subprocess.run(base + ['--spike-dtype', 'int8'], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    table = [[cell.strip() for cell in line.strip('|').split('|')]
             for line in out.stdout.splitlines()
             if line.startswith('| model') or line.startswith('| SNN')]
    snn = dict(zip(table[0], table[1]))
    assert snn['T'] == '7' and snn['spike_dtype'] == 'int8'
    assert '19 layers read spikes: 19 in int8' in out.stdout
    bad = subprocess.run(base + ['--spike-dtype', 'int4'], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and 'Traceback' not in bad.stderr
    assert '--spike-dtype' in bad.stderr


def test_fidelity_tool_compares_counts_with_float32(
        tiny_voc, weight_quantized_qann, tmp_path):
    out_dir = tmp_path / 'fid'
    run = subprocess.run(
        [sys.executable, 'tools/analysis_tools/spike_dtype_fidelity.py',
         'configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py',
         weight_quantized_qann, '--dtypes', 'int8', 'int8-rounded',
         '--timesteps', '3', '--work-dir', str(tmp_path), '--out-dir',
         str(out_dir), '--cfg-options',
         f'test_dataloader.dataset.data_root={tiny_voc}'] + TINY_OPTIONS,
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rep = json.loads((out_dir / 'fidelity.json').read_text())
    rows = {r['spike_dtype']: r for r in rep['rows']}
    assert list(rows) == ['float32', 'int8', 'int8-rounded']
    assert rep['T'] == 3 and rows['float32']['changed'] == 0
    # weights on a 4-bit grid: int8 is exact integer arithmetic, and
    # int8-rounded finds nothing to round
    for dtype in ('int8', 'int8-rounded'):
        assert rows[dtype]['changed'] < 1e-3, rows[dtype]
        assert abs(rows[dtype]['delta']) < 1e-6
    assert (out_dir / 'fidelity.png').stat().st_size > 0
    bad = subprocess.run(
        [sys.executable, 'tools/analysis_tools/spike_dtype_fidelity.py',
         'configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py',
         weight_quantized_qann, '--count-batches', '0'], cwd=REPO,
        capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and '--count-batches' in bad.stderr


def test_bench_spike_dtype_runs_tiny(capsys, one_thread):
    sys.path.insert(0, osp.join(REPO, 'benchmarks'))
    import bench_spike_dtype
    bench_spike_dtype.main([
        '--dtypes', 'int8', 'bfloat16', '--timesteps', '3', '--width', '8',
        '--size', '16', '--batch', '2', '--repeats', '1', '--layers', '3',
        '--layer-rounds', '1', '--no-record'])
    out = capsys.readouterr().out
    assert '| 3 | int8 | 2 |' in out and 'all spike-reading convs' in out


def test_a_dtype_slower_than_float32_is_named_with_its_factor(
        monkeypatch, log_of):
    """Timed once per process and dtype on the first spike-reading call:
    named with the factor when slower than float32, silent otherwise."""
    from fastsnn_mm.spiking.low_precision import fast_paths
    said = log_of(fast_paths)
    for low_ms, named in ((3.0, True), (1.0, False)):
        monkeypatch.setattr(fast_paths, '_TIMED', set())
        clock = iter([low_ms, 2.0] * 3)
        monkeypatch.setattr(fast_paths, '_ms', lambda fn: next(clock))
        said.clear()
        net = _dyadic_(ConvNet())
        with torch.no_grad():
            convert_to_snn(net, timesteps=3, spike_dtype='bfloat16')(
                torch.randn(2, 3, 8, 8))
        slow = [m for m in said if 'the time of float32' in m]
        assert len(slow) == named
        if named:
            assert '1.50x' in slow[0] and 'layer conv2' in slow[0]


def test_the_trace_line_suggests_fold_bn_where_bn_runs_on_its_own(log_of):
    from fastsnn_mm.spiking.low_precision import trace as trace_module
    said = log_of(trace_module)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), QuantReLU(3, alpha=1.0),
        nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8),
        QuantReLU(3, alpha=0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 3)).eval()
    quantize_model(net, 3, weight=dict(type='uniform', bits=4))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        for fold in (False, True):
            said.clear()
            convert_to_snn(net, timesteps=3, fold_bn=fold,
                           spike_dtype='int8')(x)
            line = [m for m in said if 'layers read spikes' in m][0]
            assert ('1 BatchNorm layers run on their own: fold_bn=True'
                    in line) is not fold
