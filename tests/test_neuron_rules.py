"""Neuron rules as classes: a rule defined outside the package (here a
reset-to-zero IF, which no fused kernel implements) is one new class, and
converting, running and sizing a network then work with it in every plan.
"""
import copy
import pickle

import pytest
import torch
from test_converter import SmallResNet
from torch import nn

from fastsnn_mm import QuantReLU, convert_to_snn
from fastsnn_mm.spiking import kernel
from fastsnn_mm.spiking.functional import backend_for, if_folded, if_loop
from fastsnn_mm.spiking.neurons import (
    NEURONS,
    IFNeuron,
    SignedIFNeuron,
    neuron_class,
)
from fastsnn_mm.spiking.rules import (
    NEURON_RULES,
    NeuronRule,
    SignedIF,
    UnsignedIF,
    as_rule,
    register_rule,
)
from fastsnn_mm.spiking.run_state import neurons_of

TOY = 'test_reset_zero'


class ResetToZeroIF(NeuronRule):
    """Fire +1 when V >= theta, then V = 0 (reset to zero); no count, no
    fused kernel: the whole rule is this class."""

    name = TOY

    def step(self, v, count, x, theta):
        v.add_(x)
        pos = v >= theta
        v.masked_fill_(pos, 0)
        return pos.to(v.dtype)


@pytest.fixture
def toy():
    register_rule(ResetToZeroIF)
    try:
        yield NEURON_RULES[TOY]
    finally:
        NEURON_RULES.pop(TOY, None)


def hand_counts(x_steps, theta, constant, T):
    """The toy rule written out again, element by element in spirit: V
    starts at theta / 2, integrates, fires at theta and resets to 0."""
    v = torch.full(x_steps.shape if constant else x_steps.shape[1:],
                   theta / 2)
    count = torch.zeros_like(v)
    for t in range(T):
        v = v + (x_steps if constant else x_steps[t])
        fire = v >= theta
        count += fire
        v = torch.where(fire, torch.zeros_like(v), v)
    return count


def dyadic(net, seed=0):
    """Weights and biases k/8, identity BN, clips 1: every sum is exact in
    float32 whatever its order, so every plan gives the same bits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randint(-3, 4, m.weight.shape,
                                             generator=g) / 8)
                if m.bias is not None:
                    m.bias.copy_(torch.randint(-2, 3, m.bias.shape,
                                               generator=g) / 8)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.eps = 0.0
            if isinstance(m, QuantReLU):
                m.alpha.fill_(1.0)
    return net.eval()


def quarter_inputs(shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 9, shape, generator=g) / 4


def test_registry_holds_the_two_rules_and_names_resolve():
    assert isinstance(NEURON_RULES['signed'], SignedIF)
    assert isinstance(NEURON_RULES['unsigned'], UnsignedIF)
    assert as_rule('signed') is as_rule(SignedIF) is as_rule(True) \
        is NEURON_RULES['signed']
    assert as_rule(False) is NEURON_RULES['unsigned']
    assert NEURONS['signed'] is SignedIFNeuron
    assert NEURONS['unsigned'] is IFNeuron
    assert SignedIFNeuron.rule is NEURON_RULES['signed']
    assert SignedIFNeuron(1.0).signed and not IFNeuron(1.0).signed
    with pytest.raises(KeyError, match='no neuron rule'):
        as_rule('leaky')


def test_signed_and_unsigned_take_the_c_kernel_toy_the_loop(toy):
    if not kernel.available():
        pytest.skip('the C kernel is not built')
    x, theta = torch.randn(3, 4), torch.ones(1)
    for name in ('signed', 'unsigned'):
        assert backend_for(x, theta, rule=name) == 'c'
        assert NEURON_RULES[name].c_kernel
    assert not toy.c_kernel and not toy.triton_kernel
    assert backend_for(x, theta, rule=toy) == 'reference'
    assert backend_for(x, theta, rule=ResetToZeroIF) == 'reference'


def test_toy_rule_reference_against_the_hand_loop(toy):
    x = torch.randn(5, 3, 7) * 0.8
    theta = torch.tensor([0.9])
    spikes = if_loop(x, theta, toy, False, 5)
    # elementwise, the same operations in time order: integer counts
    assert torch.equal(spikes.sum(0), hand_counts(x, 0.9, False, 5))
    # the dispatch falls back to the same loop
    assert torch.equal(if_folded(x, theta, TOY, False, 5), spikes * theta)


def test_register_refuses_a_duplicate_and_a_bad_rule(toy):
    with pytest.raises(KeyError, match='registered already'):
        register_rule(ResetToZeroIF)

    class Nameless(NeuronRule):
        pass
    with pytest.raises(TypeError, match='name'):
        register_rule(Nameless)

    class CountlessSigned(NeuronRule):
        name = 'test_countless'
        fused_signed = True
    with pytest.raises(TypeError, match='needs_count'):
        register_rule(CountlessSigned)
    assert 'test_countless' not in NEURON_RULES


@pytest.mark.float_order
def test_toy_rule_converts_and_every_plan_gives_the_same_bits(
        toy, monkeypatch):
    net = dyadic(SmallResNet(bits=2))
    x = quarter_inputs((3, 3, 16, 16))
    signed = convert_to_snn(net)
    with torch.no_grad():
        signed_out = signed(x)

    def no_kernel(*args, **kwargs):
        raise AssertionError('a fused kernel ran the toy rule')
    monkeypatch.setattr(kernel, 'if_folded', no_kernel)
    monkeypatch.setattr(kernel, 'if_stateful', no_kernel)
    with torch.no_grad():
        folded = convert_to_snn(net, neuron=TOY)
        chunked = convert_to_snn(net, neuron=TOY, time_chunk=2)
        streaming = convert_to_snn(net, neuron=TOY, mode='streaming')
        out = folded(x)
        # dyadic: exact in any float order
        assert torch.equal(chunked(x), out)
        assert torch.equal(streaming(x), out)
    # the rule matters: the signed SNN answers otherwise
    assert not torch.equal(signed_out, out)

    neurons = neurons_of(folded.module)
    assert neurons and all(type(n) is NEURONS[TOY] for n in neurons)
    assert all(isinstance(n, IFNeuron) and n.rule is toy for n in neurons)
    assert not any(n.signed for n in neurons)
    # the same parameters and buffers as the signed SNN's
    assert list(folded.state_dict()) == list(signed.state_dict())
    assert f'rule={TOY}' in repr(neurons[0])


def test_toy_neurons_follow_the_rule_site_by_site(toy):
    """Every neuron's spike count, replayed by hand from the input it got
    in a folded run."""
    net = dyadic(SmallResNet(bits=2))
    x = quarter_inputs((2, 3, 16, 16), seed=2)
    # all T steps in one call (no sizing pass of one image first)
    snn = convert_to_snn(net, neuron=TOY, time_chunk=3)
    T, B = snn.timesteps, x.shape[0]
    seen = []

    def keep(neuron, args, out):
        inp = args[0].detach().clone()
        constant = inp.shape[0] == B
        steps = inp if constant else inp.reshape(T, B, *inp.shape[1:])
        spikes = (out.detach() / neuron.theta).reshape(T, B, *out.shape[1:])
        seen.append((steps, constant, spikes, neuron.theta.item()))

    handles = [n.register_forward_hook(keep) for n in neurons_of(snn)]
    with torch.no_grad():
        snn(x)
    for h in handles:
        h.remove()
    assert len(seen) == len(neurons_of(snn)) and seen[0][1]  # first: const
    fired = 0
    for steps, constant, spikes, theta in seen:
        assert set(spikes.unique().tolist()) <= {0.0, 1.0}
        count = spikes.sum(0)
        # the neuron's own inputs replayed elementwise: integer counts
        assert torch.equal(count, hand_counts(steps, theta, constant, T))
        fired += int(count.sum())
    assert fired > 0


def test_toy_neurons_size_their_state_and_survive_copies(toy):
    from fastsnn_mm.spiking.sizing import input_shape_info
    net = dyadic(SmallResNet(bits=2))
    x = quarter_inputs((2, 3, 16, 16))
    toy_snn = convert_to_snn(net, neuron=TOY, mode='streaming')
    signed = convert_to_snn(net, mode='streaming')
    with torch.no_grad():
        toy_state = input_shape_info(toy_snn.module, toy_snn.module, x,
                                     3)['state_bytes']
        signed_state = input_shape_info(signed.module, signed.module, x,
                                        3)['state_bytes']
    # float32 membrane, no count; signed: + an int8 count
    assert toy_state * 5 == signed_state * 4
    # a deep copy, a pickle and a re-conversion keep (or swap) the rule
    again = pickle.loads(pickle.dumps(toy_snn))
    assert all(n.rule is toy for n in neurons_of(again))
    assert all(n.rule is toy for n in neurons_of(copy.deepcopy(toy_snn)))
    back = convert_to_snn(toy_snn, neuron='signed')
    assert all(type(n) is SignedIFNeuron for n in neurons_of(back))
    with torch.no_grad():
        # a copy of the same SNN, plan and batch: the same sums
        assert torch.equal(again(x), toy_snn(x))


def test_validation_reads_the_registry(toy):
    from fastsnn_mm.errors import BadArgumentError
    from fastsnn_mm.spiking.validation import check_snn_arguments
    check_snn_arguments(3, TOY)
    NEURON_RULES.pop(TOY)
    with pytest.raises(BadArgumentError, match=TOY):
        check_snn_arguments(3, TOY)
    assert TOY not in NEURONS
    register_rule(ResetToZeroIF)
    assert neuron_class(TOY) is NEURONS[TOY]


def test_a_declared_neuron_class_serves_its_rule():
    from fastsnn_mm.spiking import neurons

    @register_rule
    class Declared(ResetToZeroIF):
        name = 'test_declared'

    try:
        class DeclaredNeuron(IFNeuron):
            rule = 'test_declared'
        assert DeclaredNeuron.rule is NEURON_RULES['test_declared']
        assert NEURONS['test_declared'] is DeclaredNeuron
    finally:
        NEURON_RULES.pop('test_declared')
        neurons._CLASSES.pop('test_declared')
