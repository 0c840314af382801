"""Spikes written in the reader's dtype by the neuron's own kernel
(``spiking/spike_codes.py``), and the dense layouts the kernel walks.

What must hold: the codes a fused kernel writes equal what the reader
would make of spike x theta itself (:meth:`SpikeCodes.convert`), bit for
bit, in every form, rule and plan, and writing them changes nothing else;
a channels-last input is walked as it is and answered channels-last with
the contiguous run's bits; a low-precision SNN reads its neurons' codes
and gives the bits it gives without them; codes of a tensor changed in
place since are never read.
"""
import pytest
import torch
from test_low_precision import MLP, ConvNet, _dyadic_

from fastsnn_mm import convert_to_snn, quantize_model
from fastsnn_mm.spiking import IFNeuron
from fastsnn_mm.spiking.functional import (
    backend_for,
    if_folded,
    if_stateful,
    new_state,
)
from fastsnn_mm.spiking.low_precision import layers as lp_layers
from fastsnn_mm.spiking.low_precision.kernels import onednn_int8_works
from fastsnn_mm.spiking.spike_codes import (
    SHIFTED,
    SIGN,
    UNIT,
    SpikeCodes,
    attach,
    codes_of,
)

FORMS = [SpikeCodes(SHIFTED, torch.uint8),
         SpikeCodes(UNIT, torch.bfloat16), SpikeCodes(UNIT, torch.float16),
         SpikeCodes(SIGN, torch.float32), SpikeCodes(SIGN, torch.int8),
         SpikeCodes(SIGN, torch.bfloat16)]


def _steps(T=4, B=2, C=3, H=5, W=7, seed=0, channels_last=False):
    """[T, B, C, H, W] inputs with threshold hits and zeros; with
    ``channels_last``, the unfolded view of a channels-last [T*B, ...]
    tensor (as oneDNN's int8 convolution hands it over)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T * B, C, H, W, generator=g) * 0.6
    x.view(-1)[::13] = 0.7
    x.view(-1)[5::17] = 0.0
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    return x.reshape(T, B, C, H, W)


THETA = torch.tensor([0.7])


@pytest.mark.parametrize('form', FORMS, ids=lambda f: f'{f.kind}-{f.dtype}')
@pytest.mark.parametrize('rule', ['signed', 'unsigned'])
@pytest.mark.parametrize('constant', [False, True])
def test_kernel_codes_are_the_readers_own_conversion(form, rule, constant):
    x = _steps()
    inp = x[0] if constant else x
    assert backend_for(inp, THETA, rule=rule) == 'c'
    plain = if_folded(inp, THETA, rule, constant, 4)
    out = if_folded(inp, THETA, rule, constant, 4, codes=form)
    assert torch.equal(out, plain)  # the codes change nothing else
    codes = codes_of(out, form)
    assert codes is not None and codes.dtype == form.dtype
    assert torch.equal(codes, form.convert(out))
    # stateful, two calls of two steps: the same codes step by step
    v, c = new_state(x[0], THETA, rule, 4)
    parts = [if_stateful(v, c, x[0] if constant else x[t:t + 2], THETA,
                         rule, constant, 2, codes=form) for t in (0, 2)]
    assert all(torch.equal(codes_of(p, form), form.convert(p))
               for p in parts)


@pytest.mark.parametrize('rule', ['signed', 'unsigned'])
def test_channels_last_is_walked_as_it_is(rule):
    """No copy to contiguous and none back: the output (and its codes)
    come channels-last, with the contiguous run's bits."""
    steps = _steps(channels_last=True)
    ref = if_folded(_steps(), THETA, rule, False, 4)
    form = FORMS[0]
    out = if_folded(steps, THETA, rule, False, 4, codes=form)
    folded = out.reshape(-1, *out.shape[2:])
    assert folded.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, ref)
    assert codes_of(out, form).stride() == out.stride()
    # in place: written over the channels-last input itself
    mine = steps.clone()
    assert mine.stride() == steps.stride()
    over = if_folded(mine, THETA, rule, False, 4, inplace=True)
    assert over.data_ptr() == mine.data_ptr() and torch.equal(over, ref)
    # stateful: the state follows the input's layout; a contiguous state
    # with a channels-last input gets its input matched to it
    for like in (steps[0], _steps()[0]):
        v, c = new_state(like, THETA, rule, 4)
        assert v.stride() == like.stride()
        got = torch.cat([if_stateful(v, c, steps[t:t + 2], THETA, rule,
                                     False, 2) for t in (0, 2)])
        assert torch.equal(got, ref)


def test_codes_of_a_tensor_changed_in_place_are_not_read():
    form = FORMS[0]
    out = if_folded(_steps(), THETA, 'signed', False, 4, codes=form)
    assert codes_of(out, form) is not None
    assert codes_of(out, FORMS[1]) is None  # another form: not these
    out.mul_(2)
    assert codes_of(out, form) is None
    x = torch.zeros(3)
    assert codes_of(attach(x, form, torch.ones(3, dtype=torch.uint8)),
                    form) is not None


def _codes_read(snn, x):
    """(outputs, how many spike-reading calls took their neuron's codes,
    how many converted themselves)."""
    seen = [0, 0]
    real = lp_layers.codes_of

    def spy(t, form):
        got = real(t, form)
        seen[got is None] += 1
        return got
    lp_layers.codes_of = spy
    try:
        out = snn(x)
    finally:
        lp_layers.codes_of = real
    return out, seen


SPIKE_DTYPES = [pytest.param('int8', marks=pytest.mark.skipif(
    not onednn_int8_works(), reason='no oneDNN int8 ops')), 'bfloat16']


@pytest.mark.parametrize('spike_dtype', SPIKE_DTYPES)
@pytest.mark.parametrize('mode, chunk', [('folded', None), ('folded', 2),
                                         ('streaming', None)])
@pytest.mark.parametrize('make', [ConvNet, MLP])
def test_snn_reads_its_neurons_codes_with_the_same_bits(spike_dtype, mode,
                                                        chunk, make):
    net = _dyadic_(quantize_model(make(), 3) if make is MLP else make())
    x = torch.randn(2, 3, 8, 8) if make is ConvNet else torch.randn(2, 8)
    with torch.no_grad():
        snn = convert_to_snn(net, timesteps=4, mode=mode, time_chunk=chunk,
                             spike_dtype=spike_dtype)
        first = snn(x)  # the trace: neurons learn their readers' form
        neurons = [n for n in snn.modules() if isinstance(n, IFNeuron)]
        asked = [n for n in neurons if n.spike_codes is not None]
        assert asked, 'no neuron was asked for codes'
        out, (read, made) = _codes_read(snn, x)
        assert read > 0 and made == 0
        for n in neurons:
            n.spike_codes = None
        plain, (read, _) = _codes_read(snn, x)
        assert read == 0
    assert torch.equal(out, plain) and torch.equal(out, first)
