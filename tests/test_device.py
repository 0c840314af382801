"""Devices and dtypes: every tensor follows the model, and the pass plan is
the device's.

The ``meta`` device stands in for a GPU on machines without one: a tensor
made on the CPU by mistake shows up there as a device mix-up. Tests marked
``cuda`` run where a GPU is present and are skipped elsewhere.
"""
import copy
import os

import pytest
import torch
from float_order import dyadic_input, make_dyadic
from test_converter import SmallResNet, randomised
from torch import nn

from fastsnn_mm import QuantReLU, convert_to_snn, quantize_model
from fastsnn_mm.spiking import plan as planning
from fastsnn_mm.spiking import runner
from fastsnn_mm.spiking.functional import (
    NEG_EPS,
    backend_for,
    if_loop,
    if_step,
    neg_threshold,
    new_state,
)
from fastsnn_mm.spiking.plan import PassPlan, plan_for


def conv_net(bits=3):
    """conv -> BN -> QuantReLU -> conv -> QuantReLU -> pool -> linear."""
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6),
        QuantReLU(bits, alpha=1.0), nn.Conv2d(6, 6, 3, padding=1),
        QuantReLU(bits, alpha=1.0), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(6, 4))


def tensors_of(model):
    return list(model.parameters()) + list(model.buffers())


# -- meta: the CPU machine's stand-in for a GPU ------------------------------

@pytest.mark.parametrize('weight', [None, dict(type='uniform', bits=4),
                                    dict(type='apot', bits=4)])
def test_quantize_and_convert_on_meta_keep_every_tensor_on_meta(weight):
    with torch.device('meta'):
        net = SmallResNet(bits=3)
    quantize_model(net, bits=3, weight=weight)
    assert {t.device.type for t in tensors_of(net)} == {'meta'}
    snn = convert_to_snn(net.eval(), fold_bn=True)
    devices = {(n, t.device.type) for n, t in
               list(snn.named_parameters()) + list(snn.named_buffers())}
    assert devices and {d for _, d in devices} == {'meta'}, devices
    assert all(n.theta.is_meta for n in snn.module.modules()
               if hasattr(n, 'theta'))
    repr(snn)  # no host read of a meta threshold


@pytest.mark.parametrize('mode, chunk', [('folded', None), ('folded', 3),
                                         ('streaming', None)])
def test_converted_model_runs_on_meta(mode, chunk):
    with torch.device('meta'):
        net = conv_net()
    snn = convert_to_snn(net.eval(), mode=mode, time_chunk=chunk,
                         fold_bn=True)
    x = torch.empty(2, 3, 8, 8, device='meta')
    with torch.no_grad():
        out = snn(x)
    assert out.is_meta and out.shape == (2, 4)


def test_qann_built_on_cpu_then_moved_to_meta_converts_on_meta():
    net = conv_net().to('meta')
    snn = convert_to_snn(net.eval())
    assert {t.device.type for t in tensors_of(snn)} == {'meta'}
    x = torch.empty(3, 3, 8, 8, device='meta')
    with torch.no_grad():
        assert snn(x).is_meta
    # printing a model must not read a meta tensor's (absent) value
    assert 'alpha=meta' in repr(net) and 'theta=meta' in repr(snn)


def test_no_host_read_of_the_threshold_in_conversion(monkeypatch):
    """Thresholds come from alpha by tensor ops: ``.item()`` would stall a
    GPU (and fails on meta)."""
    def refuse(self):
        raise AssertionError('.item() in conversion')
    net = conv_net()
    monkeypatch.setattr(torch.Tensor, 'item', refuse)
    snn = convert_to_snn(net.eval())
    neurons = [m for m in snn.modules() if hasattr(m, 'theta')]
    monkeypatch.undo()
    assert [n.theta.item() for n in neurons] == [1.0, 1.0]


def test_no_host_read_in_the_neuron_on_non_cpu_paths(monkeypatch):
    """The reference path (what meta and non-float32 CPU tensors take)
    calls no ``.item()`` per neuron call."""
    net = randomised(SmallResNet(bits=2)).double()
    snn = convert_to_snn(net, time_chunk=3)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    calls = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, 'item',
                        lambda t: calls.append(1) or item(t))
    with torch.no_grad():
        snn(x)
    assert calls == []


# -- dtypes ------------------------------------------------------------------

@pytest.mark.float_order
def test_float64_model_end_to_end():
    net = SmallResNet(bits=2).double()
    quantize_model(net, bits=2, weight=dict(type='apot', bits=4))
    # dyadic (APoT clips included): plans sum in other orders, exactly
    net = make_dyadic(net)
    x = dyadic_input((3, 3, 16, 16), dtype=torch.float64)
    with torch.no_grad():
        qann = net(x)
    quant = [t for m in net.modules() if isinstance(m, QuantReLU)
             for t in tensors_of(m)]
    assert qann.dtype == torch.float64
    assert {t.dtype for t in quant} == {torch.float64}
    with torch.no_grad():
        folded = convert_to_snn(net)
        whole = folded(x)
        chunked = convert_to_snn(net, time_chunk=1)(x)
        streaming = convert_to_snn(net, mode='streaming')(x)
    assert whole.dtype == torch.float64
    assert {t.dtype for t in tensors_of(folded) if t.is_floating_point()} \
        == {torch.float64}
    # dyadic: exact in any float order
    assert torch.equal(whole, chunked) and torch.equal(whole, streaming)


def test_converted_model_moved_to_float64_matches_float64_conversion():
    net = randomised(SmallResNet(bits=3))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        moved = convert_to_snn(net).to(torch.float64)(x.double())
        direct = convert_to_snn(net.double())(x.double())
    # the same float64 values (float32 -> float64 is exact), the same plan
    # and batch: the same sums
    assert moved.dtype == torch.float64 and torch.equal(moved, direct)


@pytest.mark.float_order
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_converted_model_in_half_precision_runs(dtype):
    # dyadic: every value short enough for the dtype, every conv sum exact
    # in its float32 accumulator and rounded once: any order, same bits
    net = make_dyadic(SmallResNet(bits=2))
    snn = convert_to_snn(net).to(dtype)
    x = dyadic_input((2, 3, 16, 16), dtype=dtype)
    with torch.no_grad():
        folded = snn(x)
        streaming = convert_to_snn(snn, mode='streaming')(x)
    assert folded.dtype == dtype and torch.isfinite(folded).all()
    assert all(n.theta.dtype == dtype for n in snn.module.modules()
               if hasattr(n, 'theta'))
    assert torch.equal(folded, streaming)  # dyadic: exact in any order


@pytest.mark.parametrize('dtype', [torch.float64, torch.bfloat16])
def test_reference_state_keeps_the_input_dtype(dtype):
    x = torch.randn(4, 10, dtype=dtype)
    theta = torch.tensor([0.5], dtype=dtype)
    v, count = new_state(x[0], theta, True, 4)
    assert v.dtype == dtype and count.dtype == torch.int8
    if_step(v, count, x[0], theta, True)
    assert v.dtype == dtype and backend_for(x, theta) == 'reference'
    assert if_loop(x, theta, True, False, 4).dtype == dtype


def test_dispatch_by_device_and_dtype(monkeypatch):
    from fastsnn_mm.spiking import kernel
    x = torch.zeros(3, 4)
    assert backend_for(x, x) == ('c' if kernel.available() else 'reference')
    assert backend_for(x.double(), x.double()) == 'reference'
    assert backend_for(x.to('meta'), x.to('meta')) == 'reference'
    monkeypatch.setenv('FASTSNN_IF_KERNEL', '0')
    assert backend_for(x, x) == 'reference'
    assert NEG_EPS > 0


# -- the pass plan per device -------------------------------------------------

#: one image: largest neuron input 8 KiB a step, state of all neurons 40 KiB
SHAPE = dict(step_bytes=8 * 1024, state_bytes=40 * 1024, sliceable=True)


def test_cpu_plan_is_the_byte_budget_plan(monkeypatch):
    monkeypatch.setattr(planning, 'FOLD_BYTES', 60 * 1024)
    # 2 images x 7 steps x 8 KiB = 112 KiB > 60: one image a slice
    assert plan_for('cpu', 'folded', 7, 2, SHAPE) == PassPlan(7, 1, 3)
    monkeypatch.setattr(planning, 'FOLD_BYTES', 40 * 1024)
    # not even one image x 7 steps: the whole batch in 2-step chunks
    assert plan_for('cpu', 'folded', 7, 2, SHAPE) == PassPlan(2, None, 2)
    # the CPU plan ignores any device memory figure
    assert plan_for('cpu', 'folded', 7, 2, SHAPE, free_bytes=2**40) == \
        PassPlan(2, None, 2)


@pytest.fixture
def free_memory_policy(monkeypatch):
    """GPUs planned by the 'free-memory' entry (the default before the
    'qann-batch' one): all T steps of the batch while free memory allows."""
    monkeypatch.setattr(planning, 'ACCELERATOR_POLICY', 'free-memory')


@pytest.mark.parametrize('free_mib, plan', [
    (None, PassPlan(15, None, 15)),   # no figure (meta): fold everything
    (64, PassPlan(15, None, 15)),     # 32 x 15 x 8 KiB = 3.75 MiB <= 64 / 8
    (16, PassPlan(15, 17, 8)),        # 2 MiB: 17 images x 15 steps a pass
    (0.5, PassPlan(1, None, 1)),      # 64 KiB: not one image x 15 steps
])
def test_gpu_plan_folds_all_steps_within_free_memory(free_memory_policy,
                                                      free_mib, plan):
    free = None if free_mib is None else int(free_mib * 2**20)
    got = plan_for(torch.device('meta'), 'folded', 15, 32, SHAPE, free)
    assert got == plan


@pytest.mark.parametrize('batch, T, free_mib, plan', [
    # round(32 / 15) = 2 images x 15 steps = 30 image-steps a pass, ~32
    (32, 15, None, PassPlan(15, 2, 1)),
    (128, 15, 2**14, PassPlan(15, 9, 1)),  # 135, ~128
    (16, 15, None, PassPlan(15, 1, 1)),
    (1, 15, None, PassPlan(15, None, 15)),  # one image: all T steps at least
    (32, 1, None, PassPlan(1, None, 1)),   # T = 1 is the QANN's own batch
    # small free memory still bounds it: 1 MiB / 8 = 16 image-steps
    (32, 15, 1, PassPlan(15, 1, 1)),
    (32, 15, 0.5, PassPlan(1, None, 1)),
])
def test_gpu_plan_presents_about_the_qann_batch(batch, T, free_mib, plan):
    free = None if free_mib is None else int(free_mib * 2**20)
    assert plan_for('meta', 'folded', T, batch, SHAPE, free) == plan


def test_each_device_kind_is_one_policy_entry():
    assert planning.ACCELERATOR_POLICY == 'qann-batch'
    assert set(planning.POLICIES) == {'cpu', 'free-memory', 'qann-batch'}
    budgets = planning.POLICIES['qann-batch'].budgets(15, 32, SHAPE, None)
    assert budgets.fold == 2 * 15 * SHAPE['step_bytes']


def test_gpu_plan_lever_is_the_qann_batches_a_pass_presents(monkeypatch):
    monkeypatch.setattr(planning, 'DEVICE_PASS_OF_QANN', 2)
    # about 64 image-steps a pass: 4 images x 15 steps
    assert plan_for('meta', 'folded', 15, 32, SHAPE, 2**40) == \
        PassPlan(15, 4, 1)


def test_gpu_streaming_plan_slices_only_past_free_memory():
    # all state 32 x 40 KiB = 1.25 MiB
    assert plan_for('meta', 'streaming', 7, 32, SHAPE, 2**30) == \
        PassPlan(1, None, 1)
    # a quarter of 2 MiB holds 12 images' state
    assert plan_for('meta', 'streaming', 7, 32, SHAPE, 2 * 2**20) == \
        PassPlan(1, 12, 1)


@pytest.mark.float_order
def test_gpu_plan_drives_the_runner(monkeypatch, free_memory_policy):
    """The plan a GPU-like device gets is what the runner runs: passes
    counted at the first layer, spikes the same for every plan."""
    # dyadic: 1-step chunks and one fold sum convs in other orders, exactly
    net = make_dyadic(SmallResNet(bits=3))
    x = dyadic_input((4, 3, 16, 16))
    snn = convert_to_snn(net, timesteps=7)
    batches = []
    snn.module.backbone.register_forward_hook(
        lambda m, i, o: batches.append(i[0].shape[0]))
    monkeypatch.setattr(planning, 'FOLD_BYTES', 1)  # CPU plan: 1-step chunks
    with torch.no_grad():
        cpu = snn(x)
        cpu_batches, batches[:] = batches[1:], []  # minus the sizing pass
        # the same model, planned as on a GPU with plenty of memory
        plans = []
        plan = runner.plan_for

        def as_gpu(device, *args):
            plans.append(plan('meta', *args, free_bytes=2**30))
            return plans[-1]
        monkeypatch.setattr(runner, 'plan_for', as_gpu)
        gpu = snn(x)
    assert cpu_batches == [4] * 7
    assert plans == [PassPlan(7, None, 7)] and batches == [4]
    assert torch.equal(cpu, gpu)  # dyadic: exact in any float order


def test_neuron_only_runs_the_steps_it_is_handed():
    """Batch size, steps per call and call-site state live in the run,
    not in the neuron."""
    net = randomised(SmallResNet(bits=2))
    snn = convert_to_snn(net, timesteps=3, mode='streaming')
    neuron = snn.module.backbone.layer1[0].act1
    for name in ('batch_size', 'steps', 'calls', 'mode', 'step_bytes'):
        assert not hasattr(neuron, name), name
    with torch.no_grad(), runner.timestep_run(snn.module, 3, 2,
                                              'streaming') as run:
        x = torch.randn(2, 3, 16, 16)
        snn.module(x)
        run.begin_pass(1)  # the next step: the same call site's state
        snn.module(x)
        assert neuron.timestep_run is run and len(neuron.states) == 1
    assert neuron.timestep_run is None and neuron.states == []


# -- CUDA (skipped without a GPU) --------------------------------------------

@pytest.fixture
def exact_cuda():
    """cuDNN's deterministic algorithms and no TF32, restored after: the
    bit-for-bit claims hold per device and per batch shape."""
    flags = (torch.backends.cudnn.deterministic,
             torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield torch.device('cuda')
    (torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
     torch.backends.cuda.matmul.allow_tf32) = flags


@pytest.mark.cuda
@pytest.mark.parametrize('mode, chunk', [('folded', None), ('folded', 3),
                                         ('streaming', None)])
def test_cuda_convert_a_model_already_on_the_gpu(exact_cuda, mode, chunk):
    cpu_net = randomised(SmallResNet(bits=3))
    net = copy.deepcopy(cpu_net).to(exact_cuda)
    snn = convert_to_snn(net, mode=mode, time_chunk=chunk)
    assert {t.device.type for t in tensors_of(snn)} == {'cuda'}
    x = torch.randn(4, 3, 16, 16, device=exact_cuda)
    with torch.no_grad():
        out = snn(x)
        moved = convert_to_snn(cpu_net, mode=mode,
                               time_chunk=chunk).to(exact_cuda)(x)
    # the same device, plan and batch, deterministic cuDNN: the same sums
    assert out.is_cuda and torch.equal(out, moved)


@pytest.mark.cuda
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16,
                                   torch.bfloat16, torch.float64])
@pytest.mark.parametrize('signed', [True, False])
def test_cuda_triton_equals_reference(exact_cuda, dtype, signed):
    from fastsnn_mm.spiking import triton_if
    g = torch.Generator(device=exact_cuda).manual_seed(0)
    theta = torch.tensor([0.7], device=exact_cuda, dtype=dtype)
    for T in (1, 3, 7, 15):
        x = (torch.randn(T, 8, 64, 40, 40, device=exact_cuda, generator=g)
             * 0.6).to(dtype)
        assert backend_for(x, theta) == 'triton'
        for constant, inp in ((False, x), (True, x[0])):
            ref = if_loop(inp, theta, signed, constant, T) * theta
            out, _ = triton_if.if_folded(inp, theta, signed, constant, T,
                                      neg_threshold(theta))
            # elementwise: the kernel repeats the reference's operations
            assert torch.equal(ref, out), (T, constant)
        v1, c1 = new_state(x[0], theta, signed, T)
        v2, c2 = new_state(x[0], theta, signed, T)
        ref = torch.stack([if_step(v1, c1, x[t], theta, signed) * theta
                           for t in range(T)])
        out, _ = triton_if.if_stateful(v2, c2, x.clone(), theta, signed, False,
                                    T, neg_threshold(theta), True)
        assert torch.equal(ref, out) and torch.equal(v1, v2)  # elementwise


@pytest.mark.cuda
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_cuda_network_triton_equals_reference(exact_cuda, monkeypatch,
                                              dtype):
    net = randomised(SmallResNet(bits=3))
    snn = convert_to_snn(net).to(exact_cuda, dtype)
    x = torch.randn(4, 3, 16, 16, device=exact_cuda, dtype=dtype)
    with torch.no_grad():
        fast = snn(x)
        monkeypatch.setenv('FASTSNN_IF_KERNEL', '0')
        slow = snn(x)
    # same plan and batch: the same sums; the neuron update elementwise
    assert fast.dtype == dtype and torch.equal(fast, slow)


@pytest.mark.cuda
def test_cuda_plan_reads_free_memory(exact_cuda):
    free = planning.device_free_bytes(exact_cuda)
    assert free is not None and free > 0
    assert plan_for(exact_cuda, 'folded', 7, 4, SHAPE) == PassPlan(7, None, 7)
    assert os.environ.get('TRITON_INTERPRET', '0') != '1'


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs two GPUs')
def test_cuda_kernels_run_on_the_tensors_own_gpu(exact_cuda, monkeypatch):
    """A model on cuda:1 while the current device is 0: every Triton
    launch goes to its tensors' GPU."""
    from fastsnn_mm.quantization.quant_relu import quant_relu
    from fastsnn_mm.spiking import triton_if
    second = torch.device('cuda:1')
    torch.cuda.set_device(0)
    g = torch.Generator(device=second).manual_seed(0)
    x = torch.randn(7, 3, 1000, device=second, generator=g) * 0.6
    theta = torch.tensor([0.7], device=second)
    ref = if_loop(x, theta, True, False, 7) * theta
    out, _ = triton_if.if_folded(x, theta, True, False, 7,
                                 neg_threshold(theta))
    assert out.device == second and torch.equal(out, ref)  # elementwise
    alpha = torch.tensor([1.3], device=second)
    q = quant_relu(x, alpha, 7)
    monkeypatch.setenv('FASTSNN_QUANT_RELU_KERNEL', '0')
    assert torch.equal(q, quant_relu(x, alpha, 7))  # elementwise
    net = randomised(SmallResNet(bits=3))
    snn = convert_to_snn(net).to(second)
    images = torch.randn(4, 3, 16, 16, device=second, generator=g)
    with torch.no_grad():
        fast = snn(images)
        monkeypatch.setenv('FASTSNN_IF_KERNEL', '0')
        slow = snn(images)
    # same device, plan and batch: the same sums
    assert fast.device == second and torch.equal(fast, slow)
    assert torch.cuda.current_device() == 0


def test_kernel_launch_context_follows_the_tensor():
    """CPU tensors (Triton's interpreter) launch without a device switch;
    CUDA tensors inside ``torch.cuda.device`` of their own GPU."""
    import contextlib

    from fastsnn_mm.utils.devices import on_device_of
    assert isinstance(on_device_of(torch.zeros(1)), contextlib.nullcontext)
    if torch.cuda.is_available():
        ctx = on_device_of(torch.zeros(1, device='cuda'))
        assert isinstance(ctx, torch.cuda.device) and ctx.idx == 0
