"""The compiled IF kernel against the reference loop, and time chunking."""
import pytest
import torch
from float_order import dyadic_input, make_dyadic
from test_converter import SmallResNet, randomised
from torch import nn

from fastsnn_mm import QuantReLU, convert_to_snn
from fastsnn_mm.spiking import kernel, plan
from fastsnn_mm.spiking.functional import (
    if_loop,
    if_step,
    neg_threshold,
    new_state,
)
from fastsnn_mm.spiking.runner import run_timesteps


def test_kernel_is_built():
    # tools/install.sh builds it with the package; a silent fallback to the
    # reference loop would only show up as a slow benchmark
    assert kernel.available()


@pytest.mark.parametrize('signed', [True, False])
@pytest.mark.parametrize('constant', [True, False])
@pytest.mark.parametrize('T', [1, 2, 7, 15])
def test_fresh_state_kernel_equals_reference(signed, constant, T):
    g = torch.Generator().manual_seed(T)
    # 2 x 5 x 37 x 41 = 15170 elements: not a multiple of the kernel's block
    shape = (2, 5, 37, 41) if constant else (T, 2, 5, 37, 41)
    x = torch.randn(shape, generator=g) * 0.6
    theta = torch.tensor([0.7])
    ref = if_loop(x, theta, signed, constant, T) * theta
    out, _ = kernel.if_folded(x, theta, signed, constant, T,
                           neg_threshold(theta))
    # elementwise: the kernel repeats the reference's operations in order
    assert torch.equal(ref, out)
    th = theta.item()
    assert set(out.unique().tolist()) <= {-th if signed else 0.0, 0.0, th}


@pytest.mark.parametrize('signed', [True, False])
@pytest.mark.parametrize('T', [5, 200])  # int8 and int32 counts
def test_stateful_kernel_equals_reference_step_by_step(signed, T):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, 3, 333, generator=g) * 0.5
    theta = torch.tensor([0.9])
    v1, c1 = new_state(x[0], theta, signed, T)
    v2, c2 = new_state(x[0], theta, signed, T)
    t = 0
    for steps in (1, 3, 1, T):  # uneven chunks, as the runner may present
        steps = min(steps, T - t)
        if steps <= 0:
            break
        ref = torch.stack([if_step(v1, c1, x[t + i], theta, signed) * theta
                           for i in range(steps)])
        out, _ = kernel.if_stateful(v2, c2, x[t:t + steps].contiguous(), theta,
                                 signed, False, steps, neg_threshold(theta))
        # elementwise, the reference's operations in order: same bits
        assert torch.equal(ref, out) and torch.equal(v1, v2)
        if signed:
            assert torch.equal(c1, c2)  # integer counts
        t += steps


def test_kernel_splits_work_across_threads_identically():
    x = torch.randn(3, 4, 64, 33, 33) * 0.8  # big enough for several threads
    theta = torch.tensor([1.0])
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, _ = kernel.if_folded(x, theta, True, False, 3,
                               neg_threshold(theta))
        torch.set_num_threads(4)
        four, _ = kernel.if_folded(x, theta, True, False, 3,
                                neg_threshold(theta))
    finally:
        torch.set_num_threads(old)
    # elementwise: threads split elements, never a sum
    assert torch.equal(one, four)
    assert torch.equal(one, if_loop(x, theta, True, False, 3) * theta)


def test_network_same_bits_with_and_without_kernel(monkeypatch):
    net = randomised(SmallResNet(bits=3))
    x = torch.randn(4, 3, 16, 16)
    snn = convert_to_snn(net)
    with torch.no_grad():
        fast = snn(x)
        monkeypatch.setenv('FASTSNN_IF_KERNEL', '0')
        assert not kernel.available()
        slow = snn(x)
    assert torch.equal(fast, slow)  # same plan and batch: the same sums


@pytest.mark.float_order
@pytest.mark.parametrize('neuron', ['signed', 'unsigned'])
def test_time_chunks_give_the_same_bits(neuron):
    # dyadic: every conv sum exact, so any float order gives these bits
    net = make_dyadic(SmallResNet(bits=3))
    x = dyadic_input((3, 3, 16, 16))
    with torch.no_grad():
        whole = convert_to_snn(net, neuron=neuron, time_chunk=7)(x)  # T=7
        streaming = convert_to_snn(net, neuron=neuron, mode='streaming')(x)
        for chunk in (None, 1, 2, 3, 20):
            snn = convert_to_snn(net, neuron=neuron, time_chunk=chunk)
            assert torch.equal(snn(x), whole), chunk  # dyadic: exact
    assert torch.equal(streaming, whole)  # dyadic: exact in any order


@pytest.mark.float_order
@pytest.mark.parametrize('limit_kib, passes', [
    (10 ** 6, [1, 1]),  # everything fits: one pass per batch
    (60, [2, 2]),       # one image x 7 steps fits: one pass per image
    (40, [4, 4]),       # not even that: chunks of 40 // (2 x 8) = 2 steps
])
def test_automatic_plan_keeps_folded_tensors_under_the_limit(
        monkeypatch, limit_kib, passes):
    # dyadic: slices and chunks sum convs in other orders, exactly
    net = make_dyadic(SmallResNet(bits=3))
    x = dyadic_input((2, 3, 16, 16))
    # largest neuron input per image and step: 8 x 16 x 16 floats = 8 KiB
    monkeypatch.setattr(plan, 'FOLD_BYTES', limit_kib * 1024)
    snn = convert_to_snn(net, timesteps=7)
    calls = []
    snn.module.backbone.register_forward_hook(
        lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad():
        first = snn(x)
        n_first = len(calls)
        second = snn(x)
        whole = convert_to_snn(net, timesteps=7, time_chunk=7)(x)
    # the first batch of a shape adds a one-image, one-step sizing pass
    assert calls[0] == 1 and n_first == 1 + passes[0]
    assert len(calls) - n_first == passes[1]
    # dyadic: exact in any float order
    assert torch.equal(first, whole) and torch.equal(second, whole)


class ConvAct(nn.Module):
    """conv -> 2-bit QuantReLU; subclasses shape the output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = QuantReLU(bits=2)
        self.act.alpha.data.fill_(1.0)


@pytest.mark.float_order
def test_chunked_outputs_that_skip_the_neurons_stay_constant():
    class TwoHeads(ConvAct):
        def forward(self, x):
            return dict(spiking=self.act(self.conv(x)), direct=x * 2)

    net = make_dyadic(TwoHeads())
    x = dyadic_input((2, 3, 8, 8))
    with torch.no_grad():
        snn = convert_to_snn(net, timesteps=5, time_chunk=2)
        out = snn(x)
        whole = convert_to_snn(net, timesteps=5)(x)
    assert torch.equal(out['direct'], x * 2)  # elementwise, same op
    assert torch.equal(out['spiking'], whole['spiking'])  # dyadic: exact


def test_bad_time_chunk_is_refused():
    net = randomised(SmallResNet(bits=2))
    with pytest.raises(ValueError, match='time_chunk'):
        convert_to_snn(net, time_chunk=0)
    with pytest.raises(ValueError, match='folded mode only'):
        convert_to_snn(net, mode='streaming', time_chunk=2)
    with pytest.raises(ValueError, match='time_chunk'):
        run_timesteps(net, net, torch.randn(1, 3, 8, 8), 3, 'folded', 1.5)


@pytest.mark.parametrize('signed', [True, False])
def test_in_place_output_over_the_input(signed):
    x = torch.randn(4, 3, 1000) * 0.7
    theta = torch.tensor([0.8])
    neg = neg_threshold(theta)
    ref, _ = kernel.if_folded(x, theta, signed, False, 4, neg)
    y = x.clone()
    out, _ = kernel.if_folded(y, theta, signed, False, 4, neg, True)
    # elementwise, the same operations: in place or not, same bits
    assert out.data_ptr() == y.data_ptr() and torch.equal(out, ref)
    v1, c1 = new_state(x[0], theta, signed, 4)
    v2, c2 = new_state(x[0], theta, signed, 4)
    y = x.clone()
    a, _ = kernel.if_stateful(v1, c1, x, theta, signed, False, 4, neg)
    b, _ = kernel.if_stateful(v2, c2, y, theta, signed, False, 4, neg, True)
    # elementwise, the same operations: in place or not, same bits
    assert b.data_ptr() == y.data_ptr() and torch.equal(a, b)


def test_network_in_place_neurons_same_bits_and_hooks_respected():
    net = randomised(SmallResNet(bits=3))
    assert all(m.inplace for m in net.modules() if isinstance(m, QuantReLU))
    x = torch.randn(3, 3, 16, 16)
    snn = convert_to_snn(net, timesteps=5)
    copy_ = convert_to_snn(net, timesteps=5)
    for m in copy_.modules():
        if hasattr(m, 'inplace'):
            m.inplace = False
    seen = {}
    with torch.no_grad():
        assert torch.equal(snn(x), copy_(x))  # same plan: the same sums
        # a hook that reads the neuron's input after forward sees it intact
        neuron = snn.module.backbone.layer1[0].act1
        def hook(m, i, o):
            seen['intact'] = i[0] is not o and not torch.equal(i[0], o)
        neuron.register_forward_hook(hook)
        snn(x)
    assert seen['intact']


def test_outputs_without_batch_axis_are_not_sliced(monkeypatch):

    class Pooled(ConvAct):
        def forward(self, x):
            return self.act(self.conv(x)).mean()  # no batch axis

    net = Pooled().eval()
    x = torch.randn(4, 3, 8, 8)
    # one image x 3 steps fits (3 x 1 KiB), four images do not
    monkeypatch.setattr(plan, 'FOLD_BYTES', 4 * 1024)
    with torch.no_grad():
        snn = convert_to_snn(net, timesteps=3)
        out, again = snn(x), snn(x)
        whole = convert_to_snn(net, timesteps=3, time_chunk=3)(x)
    assert out.dim() == 0
    # a mean over the batch is not joined from slices: close, and the
    # same run repeated gives the same bits
    assert torch.allclose(out, whole) and torch.equal(out, again)


def _state_bytes(net):
    """Bytes of membrane and count every neuron of ``net`` holds now."""
    from fastsnn_mm.spiking.runner import neurons_of
    return sum(t.numel() * t.element_size() for n in neurons_of(net)
               for state in n.states for t in state if t is not None)


@pytest.mark.float_order
@pytest.mark.parametrize('neuron', ['signed', 'unsigned'])
def test_streaming_slices_the_batch_to_bound_neuron_state(
        monkeypatch, neuron):
    from fastsnn_mm.spiking import runner
    # dyadic: a slice's batch shape sums convs in another order, exactly
    net = make_dyadic(SmallResNet(bits=2))
    x = dyadic_input((5, 3, 16, 16))
    T = 3
    with torch.no_grad():
        folded = convert_to_snn(net, timesteps=T, neuron=neuron,
                                time_chunk=T)
        snn = convert_to_snn(net, timesteps=T, neuron=neuron,
                             mode='streaming')
        whole = snn(x)  # the default budget holds five tiny images
        held, batches = [], []

        def path(inp):  # record the state held after each step's pass
            out = snn.module(inp)
            held.append(_state_bytes(snn.module))
            batches.append(inp.shape[0])
            return out

        info = runner.input_shape_info(snn.module, snn.module, x, T)
        per_image = info['state_bytes']
        # the sizing pass's figure is the state one image really holds
        assert held == [] and per_image > 0
        run_timesteps(snn.module, path, x[:1], T, 'streaming')
        assert held == [per_image] * T
        held.clear(), batches.clear()
        # room for two images' state: balanced slices 2, 2, 1, T steps each
        monkeypatch.setattr(plan, 'STATE_BYTES', 2 * per_image + 1)
        monkeypatch.setattr(plan, 'STATE_ACTIVATIONS', 0)
        sliced = run_timesteps(snn.module, path, x, T, 'streaming')
        same_slices = torch.cat([folded(part) for part in x.split(
            [2, 2, 1])])
    assert batches == [2] * T + [2] * T + [1] * T
    assert max(held) == 2 * per_image
    # conv and linear kernels may sum in another order at another batch
    # size (here the one-image slice); on dyadic values every order is
    # exact, so slices, the whole batch and the folded run are the same
    # bits (random floats: within a float bound up to threshold ties, see
    # test_float_order.py)
    assert torch.equal(sliced, same_slices)
    assert torch.equal(sliced, whole)
    assert torch.equal(whole, folded(x))


def test_plans_balance_the_slices(monkeypatch):
    from fastsnn_mm.spiking import runner
    net = randomised(SmallResNet(bits=2))
    snn = convert_to_snn(net, timesteps=3, mode='streaming')
    x = torch.randn(7, 3, 16, 16)
    batches = []
    snn.module.backbone.register_forward_hook(
        lambda m, i, o: batches.append(i[0].shape[0]))
    with torch.no_grad():
        snn(x[:1])  # sizing pass + one image
        per_image = runner.input_shape_info(snn.module, snn.module, x,
                                             3)['state_bytes']
        batches.clear()
        monkeypatch.setattr(plan, 'STATE_BYTES', 3 * per_image)
        monkeypatch.setattr(plan, 'STATE_ACTIVATIONS', 0)
        snn(x)
    # 7 images by at most 3: 3, 2, 2 rather than 3, 3, 1
    assert batches == [3] * 3 + [2] * 3 + [2] * 3


def test_sizing_pass_counts_the_state_of_this_neuron_type_and_T():
    from fastsnn_mm.spiking import runner
    net = randomised(SmallResNet(bits=2))
    x = torch.randn(2, 3, 16, 16)

    def state_bytes(snn, T):
        return runner.input_shape_info(snn.module, snn.module, x,
                                        T)['state_bytes']
    signed3 = convert_to_snn(net, timesteps=3, mode='streaming')
    with torch.no_grad():
        s3 = state_bytes(signed3, 3)
        # converted again from the converted copy, which carries its sizes
        s200 = state_bytes(convert_to_snn(signed3, timesteps=200), 200)
        u3 = state_bytes(convert_to_snn(signed3, neuron='unsigned'), 3)
    # float32 membrane + int8 count, + int32 count, no count: 5 / 8 / 4
    assert s3 * 8 == s200 * 5 and s3 * 4 == u3 * 5


def _count_kernel_calls(monkeypatch):
    calls = []
    for name in ('if_folded', 'if_stateful'):
        real = getattr(kernel, name)
        monkeypatch.setattr(kernel, name, lambda *a, real=real, **k:
                            calls.append(1) or real(*a, **k))
    return calls


def test_strided_input_takes_the_kernel_not_the_loop(monkeypatch):
    """A channels_last activation viewed as [T, B, ...] is not contiguous:
    it is copied contiguous (one pass) and runs in the kernel."""
    from fastsnn_mm.spiking import functional
    x = torch.randn(6, 5, 9, 11).to(memory_format=torch.channels_last)
    steps = x.reshape(3, 2, *x.shape[1:])
    theta = torch.tensor([0.8])
    assert not steps.is_contiguous()
    assert functional.backend_for(steps, theta) == 'c'
    calls = _count_kernel_calls(monkeypatch)
    ref = if_loop(steps, theta, True, False, 3) * theta
    # elementwise: a contiguous copy, then the reference's operations
    assert torch.equal(functional.if_folded(steps, theta, True, False, 3),
                       ref)
    v, c = new_state(steps[0], theta, True, 3)
    out = functional.if_stateful(v, c, steps, theta, True, False, 3)
    assert torch.equal(out, ref) and len(calls) == 2


@pytest.mark.parametrize('chunk', [None, 2])
def test_channels_last_network_runs_its_neurons_in_the_kernel(
        monkeypatch, chunk):
    net = randomised(SmallResNet(bits=3)).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 16, 16).to(memory_format=torch.channels_last)
    snn = convert_to_snn(net, timesteps=5, time_chunk=chunk)
    with torch.no_grad():
        calls = _count_kernel_calls(monkeypatch)
        fast = snn(x)
        n_neurons = len(calls)
        monkeypatch.setenv('FASTSNN_IF_KERNEL', '0')
        slow = snn(x)
    assert n_neurons > 0 and len(calls) == n_neurons  # none in the loop
    assert torch.equal(fast, slow)  # same plan and batch: the same sums
