"""IF / signed IF neurons against the QANN they replace."""
import pytest
import torch
from torch import nn

from fastsnn_mm import (
    IFNeuron,
    QuantReLU,
    SignedIFNeuron,
    convert_to_snn,
    timestep_context,
)
from fastsnn_mm.spiking.functional import if_loop


def spike_counts(neuron_cls, x_steps, theta, T):
    """Feed a [T, N] input sequence through a neuron, return net counts."""
    neuron = neuron_cls(theta=theta)
    N = x_steps.shape[1]
    with timestep_context(neuron, T, N, 'folded'):
        out = neuron(x_steps.reshape(T * N))
    return (out.reshape(T, N) / theta).round().sum(0)


@pytest.mark.parametrize('bits', [1, 2, 3, 4])
@pytest.mark.parametrize('neuron_cls', [IFNeuron, SignedIFNeuron])
def test_constant_input_count_equals_qann_level(bits, neuron_cls):
    alpha = 1.5
    L = 2 ** bits - 1
    q = QuantReLU(bits=bits, alpha=alpha)
    # a grid over [-alpha, 2 alpha], level boundaries avoided by float noise
    x = torch.linspace(-alpha, 2 * alpha, 997)
    level = (q(x) / alpha * L).round()
    counts = spike_counts(neuron_cls, x.expand(L, -1), alpha, L)
    # integer counts and levels
    assert torch.equal(counts, level)


def test_sequential_error_unsigned_overcounts_signed_exact():
    theta, T = 1.0, 3
    # early positive charge fires a spike that later negative input cancels:
    # mean input 0 -> QANN level 0
    seq = torch.tensor([[1.0], [-1.0], [0.0]])
    assert spike_counts(IFNeuron, seq, theta, T).item() == 1
    assert spike_counts(SignedIFNeuron, seq, theta, T).item() == 0


def test_counts_stay_in_range_for_random_sequences():
    torch.manual_seed(0)
    T, theta = 7, 0.8
    seq = torch.randn(T, 5000) * 2
    for cls in (IFNeuron, SignedIFNeuron):
        c = spike_counts(cls, seq, theta, T)
        assert c.min() >= 0 and c.max() <= T


def test_signed_has_fewer_count_errors_than_unsigned_on_noisy_inputs():
    # constant drive plus zero-mean noise: the QANN sees the mean input
    torch.manual_seed(1)
    T, theta = 7, 1.0
    seq = torch.rand(1, 4000) * theta + torch.randn(T, 4000) * 0.3
    expected = torch.floor(seq.sum(0) / theta + 0.5).clamp(0, T)
    err_signed = (spike_counts(SignedIFNeuron, seq, theta, T) != expected)
    err_unsigned = (spike_counts(IFNeuron, seq, theta, T) != expected)
    assert err_signed.float().mean() < 0.5 * err_unsigned.float().mean()


def test_reference_loop_constant_equals_repeated():
    x = torch.randn(3, 4)
    a = if_loop(x, torch.tensor(0.7), True, True, 5)
    b = if_loop(x.expand(5, 3, 4).clone(), torch.tensor(0.7), True, False, 5)
    # elementwise, the same operations: the same bits
    assert torch.equal(a, b)


def test_neuron_outside_runner_raises():
    with pytest.raises(RuntimeError, match='timestep runner'):
        SignedIFNeuron(1.0, bits=2)(torch.ones(2))


def test_threshold_loads_from_qann_alpha():
    net = nn.Sequential(nn.Linear(2, 2), QuantReLU(2, alpha=0.9),
                        nn.Linear(2, 1))
    snn = convert_to_snn(net)
    net[1].alpha.data.fill_(1.7)
    snn.module.load_state_dict(net.state_dict())
    assert snn.module[1].theta.item() == pytest.approx(1.7)
