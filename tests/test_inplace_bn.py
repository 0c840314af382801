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


# -- BN left to the neuron after it (spiking/deferred_bn.py) ---------------

def _deferrals(monkeypatch):
    from fastsnn_mm.spiking import deferred_bn
    made = []
    defer = deferred_bn.defer

    def spy(x, bn, factors):
        made.append(factors[2])
        return defer(x, bn, factors)
    monkeypatch.setattr(deferred_bn, 'defer', spy)
    return made


@pytest.mark.parametrize('kw', [dict(), dict(time_chunk=2),
                                dict(mode='streaming')])
@pytest.mark.parametrize('spike_dtype', [None, 'int8'])
def test_neuron_applies_the_bn_before_it_with_the_same_bits(
        monkeypatch, kw, spike_dtype):
    """bn1 -> act1 (declared) and the stem's Sequential: the neuron's C
    kernel applies those BNs in its own pass, as ATen computes them here;
    the outputs are the plain model's bits, folded, chunked, streaming."""
    from fastsnn_mm.spiking import kernel
    if not kernel.available():
        pytest.skip('the compiled IF kernel is not built')
    net = _net(weight_bits=4 if spike_dtype else None)
    x = torch.randn(3, 3, 16, 16)
    snn = convert_to_snn(net, timesteps=5, spike_dtype=spike_dtype, **kw)
    made = _deferrals(monkeypatch)
    with torch.no_grad():
        snn(x)  # the trace's call: hooks on the neurons, nothing left
        out = snn(x)
    # per pass: every block's bn1 and bn2 (8 + 8; bn2 with the shortcut's
    # sum) and the stem's BN (its neuron, fed a constant input, hands it
    # back to ATen); a sizing pass may add one
    assert made and len(made) % 17 == 0
    monkeypatch.setattr(InPlaceBatchNorm2d, '_may_overwrite',
                        lambda self, x: False)
    with torch.no_grad():
        ref = snn(x)
    assert torch.equal(out, ref)


@pytest.mark.parametrize('residual', [False, True])
@pytest.mark.parametrize('fma', [True, False])
@pytest.mark.parametrize('channels, layout', [
    (37, torch.channels_last), (5, torch.contiguous_format)])
@pytest.mark.parametrize('signed', [True, False])
def test_kernel_bn_mode_is_bn_then_update(fma, channels, layout, signed,
                                          residual):
    """The C kernel's BN mode gives what BN (the kernel's own arithmetic,
    bn_apply), a residual sum, then the update give, codes too, folded
    and stateful."""
    from fastsnn_mm.spiking import kernel
    from fastsnn_mm.spiking.rules import neg_threshold
    from fastsnn_mm.spiking.spike_codes import SHIFTED, SpikeCodes
    if not kernel.available():
        pytest.skip('the compiled IF kernel is not built')
    g = torch.Generator().manual_seed(channels)
    bn = nn.BatchNorm2d(channels).eval()
    for t in (bn.weight.data, bn.bias.data, bn.running_mean):
        t.copy_(torch.randn(channels, generator=g))
    bn.running_var.copy_(torch.rand(channels, generator=g) + 0.1)
    T, theta = 4, torch.tensor([0.75])
    x = torch.randn(T * 2, channels, 5, 7, generator=g)
    x = x.contiguous(memory_format=layout)
    alpha, beta = kernel.bn_factors(bn, fma)
    normed = kernel.bn_apply(x, alpha, beta, fma)
    res = None
    if residual:
        res = torch.randn(x.shape, generator=g).contiguous(
            memory_format=layout)
        normed = normed + res
    args = (alpha, beta, fma, res)
    codes = SpikeCodes(SHIFTED, torch.uint8)
    bound = (codes, codes.bits(0.75))
    neg = neg_threshold(theta)
    steps = x.view(T, 2, channels, 5, 7)
    want = kernel.if_folded(normed.view(T, 2, channels, 5, 7), theta, signed,
                            False, T, neg, False, bound)
    got = kernel.if_folded(steps, theta, signed, False, T, neg, False, bound,
                           bn=args)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    v = torch.full_like(x[:2], 0.375)
    count = torch.zeros(v.shape, dtype=torch.int32)
    v2, count2 = v.clone(memory_format=torch.preserve_format), count.clone()
    a = kernel.if_stateful(v, count, normed.view(T, 2, channels, 5, 7),
                           theta, signed, False, T, neg)
    b = kernel.if_stateful(v2, count2, steps, theta, signed, False, T, neg,
                           bn=args)
    assert torch.equal(a[0], b[0]) and torch.equal(v, v2)
    assert torch.equal(count, count2)


def test_a_hook_on_the_neuron_sees_the_bns_output(monkeypatch):
    """A pre-hook on the neuron reads its input: the BN before it then
    runs itself (nothing is left to the neuron), and the hook sees what a
    plain BN gives."""
    snn = convert_to_snn(_net(), timesteps=3)
    act = snn.module.backbone.layer1[0].act1
    seen = []
    act.register_forward_pre_hook(lambda m, args: seen.append(
        args[0].clone()))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        snn(x)
        hooked = seen[-1]
        monkeypatch.setattr(InPlaceBatchNorm2d, '_may_overwrite',
                            lambda self, x: False)
        snn(x)
    assert torch.equal(hooked, seen[-1])


def test_a_wrong_norm_act_declaration_is_an_error_not_a_wrong_answer():
    """A module that declares bn -> act but changes the BN's output in
    between: the neuron sees the change and refuses in one error naming
    the declaration."""
    from fastsnn_mm import QuantReLU

    class Wrong(nn.Module):
        conv_bn_pairs = (('conv', 'bn'), )
        norm_act_pairs = (('bn', 'act'), )

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.act = QuantReLU(3, alpha=1.0)
            self.act0 = QuantReLU(3, alpha=1.0)

        def forward(self, x):
            y = self.bn(self.conv(self.act0(x)))
            y += 1  # not what norm_act_pairs promised
            return self.act(y).mean((2, 3))

    from fastsnn_mm.spiking import kernel
    if not kernel.available():
        pytest.skip('the compiled IF kernel is not built')
    snn = convert_to_snn(randomised(Wrong()), timesteps=3)
    with torch.no_grad(), pytest.raises(RuntimeError,
                                        match='norm_act_pairs'):
        snn(torch.randn(2, 3, 8, 8))


def test_a_sum_in_another_layout_runs_the_bn_first():
    """deferred_bn.add_: the shortcut laid out otherwise than the BN's
    input cannot be left to the kernel: BN runs, then the sum, as plain."""
    from fastsnn_mm.spiking import deferred_bn, kernel
    if not kernel.available():
        pytest.skip('the compiled IF kernel is not built')
    g = torch.Generator().manual_seed(3)
    bn = InPlaceBatchNorm2d.sharing(nn.BatchNorm2d(6), nn.Module(), 'c')
    bn.running_mean.copy_(torch.randn(6, generator=g))
    bn.eval()
    x = torch.randn(4, 6, 5, 5, generator=g).contiguous(
        memory_format=torch.channels_last)
    other = torch.randn(4, 6, 5, 5, generator=g)  # contiguous
    with torch.no_grad():
        want = nn.functional.batch_norm(
            x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
            False, 0.0, bn.eps) + other
        factors = kernel.bn_factors(bn, True) + (True, )
        out = deferred_bn.add_(deferred_bn.defer(x, bn, factors), other)
    assert out is x and deferred_bn.take(out) is None
    assert torch.equal(out, want)
