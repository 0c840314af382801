"""BN in place on its conv's output at SNN inference: the same bits, and
never where anything else could see the conv's output."""
import pytest
import torch
from test_converter import SmallResNet, randomised
from torch import nn

from fastsnn_mm import convert_to_snn
from fastsnn_mm.quantization import quantize_model
from fastsnn_mm.spiking import inplace_bn
from fastsnn_mm.spiking.inplace_bn import InPlaceBatchNorm2d, in_place_works
from fastsnn_mm.spiking.neurons import IFNeuron


def _net(dtype=torch.float32, weight_bits=None):
    net = randomised(SmallResNet(bits=3))
    if weight_bits:
        quantize_model(net, 3, weight=dict(type='uniform', bits=weight_bits))
    return net.to(dtype)


def _overwrites(monkeypatch):
    """Record, per call of an InPlaceBatchNorm2d, whether it wrote over
    its input."""
    said = []
    check = InPlaceBatchNorm2d._may_overwrite

    def spy(self, x):
        said.append(check(self, x))
        return said[-1]
    monkeypatch.setattr(InPlaceBatchNorm2d, '_may_overwrite', spy)
    return said


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('spike_dtype', [None, 'int8'])
def test_in_place_gives_the_plain_bns_bits(monkeypatch, dtype, spike_dtype):
    if spike_dtype and dtype != torch.float32:
        pytest.skip('low-precision spikes read float32 models')
    net = _net(dtype, weight_bits=4 if spike_dtype else None)
    x = torch.randn(3, 3, 16, 16, dtype=dtype)
    snn = convert_to_snn(net, timesteps=5, spike_dtype=spike_dtype)
    bns = [m for m in snn.modules() if isinstance(m, nn.BatchNorm2d)]
    # every BN of the ResNet follows its conv for certain: stem, blocks,
    # shortcuts
    assert bns and all(type(m) is InPlaceBatchNorm2d for m in bns)
    said = _overwrites(monkeypatch)
    with torch.no_grad():
        out = snn(x)
    assert any(said) == in_place_works(dtype)
    # the same model with every BN plain again
    monkeypatch.setattr(InPlaceBatchNorm2d, '_may_overwrite',
                        lambda self, x: False)
    with torch.no_grad():
        ref = snn(x)
    assert out.dtype == dtype and torch.equal(out, ref)


def test_state_dict_keys_and_values_are_the_qanns():
    net = _net()
    snn = convert_to_snn(net)
    a, b = snn.module.state_dict(), net.state_dict()
    # the clips are thresholds now; every other key and value as it was
    assert {k.replace('theta', 'alpha') for k in a} == set(b)
    assert all(torch.equal(a[k], b[k]) for k in b if k in a)
    assert all(k in a for k in b if 'bn' in k or 'downsample.1' in k)


def test_a_hook_on_the_conv_keeps_an_untouched_output(monkeypatch):
    """A forward hook on the conv may keep its output (statistics,
    fine-tuning targets): then BN must not write over it."""
    snn = convert_to_snn(_net(), timesteps=3)
    conv = snn.module.backbone.layer1[0].conv1
    kept = []
    conv.register_forward_hook(
        lambda m, args, out: kept.append((out, out.clone())))
    said = _overwrites(monkeypatch)
    with torch.no_grad():
        snn(torch.randn(2, 3, 16, 16))
    assert kept and all(torch.equal(a, b) for a, b in kept)
    assert False in said  # that BN ran as a plain one


def test_autograd_or_training_runs_the_plain_bn(monkeypatch):
    snn = convert_to_snn(_net(), timesteps=3)
    said = _overwrites(monkeypatch)
    snn(torch.randn(2, 3, 16, 16))  # autograd on: layer-wise fine-tuning
    assert said and not any(said)
    bn = next(m for m in snn.modules() if isinstance(m, InPlaceBatchNorm2d))
    x = torch.randn(2, bn.num_features, 4, 4)
    with torch.no_grad():
        assert bn._may_overwrite(x) == in_place_works(torch.float32)
        bn.train()
        assert not bn._may_overwrite(x)


def test_views_and_probe_failures_run_the_plain_bn(monkeypatch):
    snn = convert_to_snn(_net(), timesteps=3)
    bn = next(m for m in snn.modules() if isinstance(m, InPlaceBatchNorm2d))
    x = torch.randn(4, bn.num_features, 4, 4)
    with torch.no_grad():
        assert not bn._may_overwrite(x[:2])  # a view: its base may be read
        monkeypatch.setattr(inplace_bn, 'in_place_works', lambda d: False)
        before = x.clone()
        out = bn(x)
    assert torch.equal(x, before) and out is not x


def test_bn_after_two_convs_stays_plain():
    """One BN object after two convs: which conv's hooks to ask is not
    certain, so it is left plain."""
    class Twice(nn.Module):
        conv_bn_pairs = (('a', 'bn'), ('b', 'bn'))

        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)
            self.bn = nn.BatchNorm2d(4)

    model = Twice().eval()
    assert inplace_bn.bn_in_place(model) == 0
    assert type(model.bn) is nn.BatchNorm2d


def test_stem_spikes_for_an_int8_conv_are_channels_last(monkeypatch):
    """The first neuron's input ran once (constant over time) and came
    contiguous from the float32 stem; its spikes are read by oneDNN's int8
    conv, which works channels-last: the neuron lays them out so, at 1/T
    of the copy, with the same spikes."""
    net = _net(weight_bits=4)
    x = torch.randn(2, 3, 16, 16)
    snn = convert_to_snn(net, timesteps=5, spike_dtype='int8')
    seen = {}
    first = next(m for m in snn.modules() if isinstance(m, IFNeuron))
    first.register_forward_hook(
        lambda m, args, out: seen.update(out=out.clone(
            memory_format=torch.preserve_format)))
    with torch.no_grad():
        out = snn(x)
        laid = seen['out']
        from fastsnn_mm.spiking import neurons
        monkeypatch.setattr(neurons, 'channels_last_for_convs',
                            lambda steps, constant: steps)
        ref = snn(x)
    assert first.spike_codes is not None
    assert laid.is_contiguous(memory_format=torch.channels_last)
    assert not seen['out'].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(laid, seen['out']) and torch.equal(out, ref)
