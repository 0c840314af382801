"""The QANN -> SNN converter on plain networks."""
import pytest
import torch
from torch import nn

from fastsnn_mm import (
    IFNeuron,
    QuantReLU,
    SignedIFNeuron,
    SpikingNetwork,
    UnconvertibleModelError,
    convert_to_snn,
)
from fastsnn_mm.models.backbones import QResNet
from fastsnn_mm.spiking.fold_bn import FoldedConv2d


class SmallResNet(nn.Module):
    """QResNet-18 at width 8 with a linear classifier: residual adds,
    strided convs, global average pooling."""

    def __init__(self, bits=2):
        super().__init__()
        self.backbone = QResNet(depth=18, base_channels=8,
                                act_cfg=dict(type='QuantReLU', bits=bits))
        self.fc = nn.Linear(64, 5)

    def forward(self, x):
        return self.fc(self.backbone(x)[-1].mean((2, 3)))


def randomised(net, seed=0):
    """Non-trivial BN statistics and clips, as after training."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - .5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + .5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + .5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * .4)
        if isinstance(m, QuantReLU):
            m.alpha.data.fill_(1.0)
    return net.eval()


@pytest.mark.float_order
def test_folded_equals_streaming_bit_for_bit_on_resnet():
    from float_order import dyadic_input, make_dyadic

    # dyadic: folded (T x B) and streaming (B) batches sum convs in other
    # orders; every sum is exact, so the bits are the same
    net = make_dyadic(SmallResNet())
    x = dyadic_input((3, 3, 16, 16))
    for neuron in ('signed', 'unsigned'):
        folded = convert_to_snn(net, neuron=neuron, mode='folded')(x)
        streaming = convert_to_snn(net, neuron=neuron, mode='streaming')(x)
        assert torch.equal(folded, streaming)  # dyadic: exact in any order


def test_conversion_defaults_and_keeps_weights():
    net = randomised(SmallResNet(bits=3))
    snn = convert_to_snn(net)
    assert isinstance(snn, SpikingNetwork) and snn.timesteps == 7
    neurons = [m for m in snn.modules() if isinstance(m, IFNeuron)]
    assert neurons and all(isinstance(n, SignedIFNeuron) for n in neurons)
    assert not any(isinstance(m, QuantReLU) for m in snn.modules())
    assert torch.equal(snn.module.fc.weight, net.fc.weight)  # a copy
    # the original QANN is untouched (deep copy by default)
    assert any(isinstance(m, QuantReLU) for m in net.modules())


def test_snn_output_close_to_qann():
    torch.manual_seed(0)
    net = randomised(SmallResNet(bits=3))
    x = torch.randn(16, 3, 16, 16)
    with torch.no_grad():
        ref = net(x)
        for neuron in ('signed', 'unsigned'):
            out = convert_to_snn(net, neuron=neuron)(x)
            assert (out - ref).abs().mean() < 0.1 * ref.abs().mean()
            assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.9


def test_single_layer_snn_equals_qann_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), QuantReLU(3, alpha=1.0),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    x = torch.randn(4, 3, 8, 8)
    for neuron in ('signed', 'unsigned'):
        out = convert_to_snn(net, neuron=neuron)(x)
        assert torch.allclose(out, net(x), atol=1e-5)


def test_any_timesteps_and_bad_arguments():
    net = randomised(SmallResNet())
    x = torch.randn(2, 3, 16, 16)
    assert convert_to_snn(net, timesteps=1)(x).shape == (2, 5)
    with pytest.raises(ValueError, match='timesteps'):
        convert_to_snn(net, timesteps=0)
    with pytest.raises(ValueError, match='neuron'):
        convert_to_snn(net, neuron='leaky')
    with pytest.raises(ValueError, match='mode'):
        convert_to_snn(net, mode='parallel')


def test_refuses_maxpool_and_leaky_relu_naming_both():
    net = nn.Sequential()
    net.add_module('stem', nn.Sequential(nn.Conv2d(3, 4, 3), QuantReLU(2)))
    net.add_module('pool', nn.MaxPool2d(2))
    net.add_module('block', nn.Sequential(nn.Conv2d(4, 4, 3),
                                          nn.LeakyReLU(0.1)))
    with pytest.raises(UnconvertibleModelError) as err:
        convert_to_snn(net)
    msg = str(err.value)
    assert 'pool: MaxPool2d' in msg and 'block.1: LeakyReLU' in msg
    assert 'AvgPool' in msg and 'QuantReLU' in msg


def test_refuses_unquantized_model():
    with pytest.raises(UnconvertibleModelError, match='quantize'):
        convert_to_snn(nn.Sequential(nn.Linear(2, 2)))


def test_weight_quantized_layers_are_baked():
    from fastsnn_mm import quantize_model
    torch.manual_seed(0)
    net = randomised(quantize_model(
        SmallResNet(), bits=2, weight=dict(type='uniform', bits=4)))
    qconvs = [m for m in net.modules() if hasattr(m, 'quantized_weight')]
    assert qconvs
    snn = convert_to_snn(net)
    plain = [m for m in snn.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(type(m) in (nn.Conv2d, FoldedConv2d, nn.Linear)
               for m in plain)
    assert len(plain) == len(qconvs)
    for q, p in zip(qconvs, plain):
        # the same elementwise quantization recomputed: the same bits
        assert torch.equal(p.weight, q.quantized_weight().detach())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert (snn(x) - net(x)).abs().mean() < 0.2 * net(x).abs().mean()


def test_copy_keyword_and_the_old_inplace_refused():
    from fastsnn_mm.errors import BadArgumentError
    net = randomised(SmallResNet())
    snn = convert_to_snn(net)  # copy=True: the QANN is left as it was
    assert snn.module is not net
    assert any(isinstance(m, QuantReLU) for m in net.modules())
    with pytest.raises(BadArgumentError, match=r'copy=False for inplace=True'):
        convert_to_snn(net, inplace=True)
    with pytest.raises(TypeError, match='timestep'):
        convert_to_snn(net, timestep=3)
    with pytest.raises(TypeError):  # keyword only: no silent flip of sense
        convert_to_snn(net, None, 'signed', 'folded', (), False)
    same = convert_to_snn(net, copy=False)
    assert same.module is net
    assert not any(isinstance(m, QuantReLU) for m in net.modules())


def test_per_step_normalisation_is_refused_by_path():
    """GroupNorm / LayerNorm / InstanceNorm normalise each time step by its
    own statistics (FCOS heads use GroupNorm): refused, not converted."""
    import pytest
    from torch import nn

    from fastsnn_mm.quantization import QuantReLU
    from fastsnn_mm.spiking import (
        UnconvertibleModelError,
        convert_to_snn,
        find_unconvertible,
    )
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4),
                        QuantReLU(bits=2), nn.Conv2d(4, 4, 1),
                        nn.InstanceNorm2d(4), QuantReLU(bits=2))
    found = find_unconvertible(net)
    assert [(p, t) for p, t, _ in found] == [('1', 'GroupNorm'),
                                              ('4', 'InstanceNorm2d')]
    with pytest.raises(UnconvertibleModelError, match='1: GroupNorm'):
        convert_to_snn(net, timesteps=3)
