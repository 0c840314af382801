"""One rules table for the spiking path: surgery, make_convertible and the
converter agree on every module type, and function calls on the spiking
path (``F.relu(x)`` in a forward) are refused by path or, with
make_convertible, routed to a module and logged."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastsnn_mm.quantization import (
    QuantReLU,
    make_convertible,
    quantize_model,
)
from fastsnn_mm.quantization import convertible as convertible_module
from fastsnn_mm.quantization.spiking_rules import (
    MODULE_RULES,
    RELU,
    module_rule,
)
from fastsnn_mm.spiking import (
    IFNeuron,
    UnconvertibleModelError,
    convert_to_snn,
    find_unconvertible,
)
from fastsnn_mm.utils.modules import replace_modules

pytestmark = pytest.mark.usefixtures('one_thread')

#: constructor arguments of table types that need some
_ARGS = {
    nn.MultiheadAttention: (4, 1), nn.GroupNorm: (2, 4),
    nn.LayerNorm: (4, ), nn.LocalResponseNorm: (2, ),
    nn.modules.instancenorm._InstanceNorm: None,
    nn.MaxPool1d: (2, ), nn.MaxPool2d: (2, ), nn.MaxPool3d: (2, ),
    nn.AdaptiveMaxPool1d: (1, ), nn.AdaptiveMaxPool2d: (1, ),
    nn.AdaptiveMaxPool3d: (1, ), nn.LPPool1d: (2, 2), nn.LPPool2d: (2, 2),
    nn.FractionalMaxPool2d: (2, 2), nn.FractionalMaxPool3d: (2, 2),
}


def _examples():
    """One instance of every type the table names (a concrete subclass
    for an abstract base), and the refused forms of a max-pool."""
    out = [nn.InstanceNorm2d(4), nn.MaxPool2d(3, 1, 1),
           nn.MaxPool2d(2, return_indices=True), nn.MaxPool2d(2, 2, 0, 2)]
    for typ in MODULE_RULES:
        args = _ARGS.get(typ, ())
        if args is not None:
            out.append(typ(*args))
    return out


class Holder(nn.Module):
    """A conv and a ReLU that run, and ``m``, which never runs: the module
    rules are about module types, not about a forward."""

    def __init__(self, m):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU()
        self.m = m

    def forward(self, x):
        return self.relu(self.conv(x))


@pytest.fixture
def logged(log_of):
    return log_of(convertible_module)


# -- one table for modules ----------------------------------------------------
@pytest.mark.parametrize('m', _examples(), ids=lambda m: repr(m)[:40])
def test_make_convertible_and_converter_agree_on_every_type(m):
    """Accepted by make_convertible: converts after surgery. Refused by
    it: the converter refuses it too, with the very same line."""
    rule = module_rule(m)
    converter_sees = find_unconvertible(quantize_model(Holder(m), 3))
    assert [(p, t) for p, t, _ in converter_sees] == \
        [('m', type(m).__name__)]
    if rule.refused:
        line = f'  m: {type(m).__name__} -> {rule.note}'
        with pytest.raises(UnconvertibleModelError) as err:
            make_convertible(Holder(m))
        assert line in str(err.value).splitlines()
        assert converter_sees[0][2] == rule.note
        return
    net = Holder(m)
    make_convertible(net)
    quantize_model(net, 3)
    assert find_unconvertible(net) == []
    assert type(net.m).__name__ == ('QuantReLU' if rule.use == RELU
                                    else rule.use)
    convert_to_snn(net)


def test_mmcv_activations_follow_the_table():
    mmcv = pytest.importorskip('mmcv.cnn.bricks')
    for cls, replaced in [(mmcv.Swish, True), (mmcv.HSwish, True),
                          (mmcv.HSigmoid, False)]:
        m = cls()
        assert find_unconvertible(quantize_model(Holder(m), 3),
                                  functions=False)[0][1] == cls.__name__
        if replaced:
            net = Holder(m)
            make_convertible(net)
            assert isinstance(net.m, nn.ReLU)
        else:
            with pytest.raises(UnconvertibleModelError, match='m: HSigmoid'):
                make_convertible(Holder(m))


class Acts(nn.Module):
    """conv -> act -> conv per activation, in one forward."""

    def __init__(self, *acts):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3, 3, 1) for _ in acts)
        self.acts = nn.ModuleList(acts)

    def forward(self, x):
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        return x


def test_elu_prelu_tanh_softplus_become_quant_relus_before_qat(logged):
    net = Acts(nn.ReLU(), nn.ELU(), nn.PReLU(), nn.Tanh(), nn.Softplus())
    done = make_convertible(net)
    assert [old for _, old, _ in done] == ['ELU', 'PReLU', 'Tanh',
                                           'Softplus']
    quantize_model(net, 3)
    assert all(isinstance(a, QuantReLU) for a in net.acts)
    assert 'no longer in [-1, 1]' in logged[0]  # Tanh's note
    convert_to_snn(net)


def test_sigmoid_is_refused_before_qat_with_the_converters_reason():
    net = Acts(nn.ReLU(), nn.Sigmoid())
    with pytest.raises(UnconvertibleModelError) as before:
        make_convertible(net)
    with pytest.raises(UnconvertibleModelError) as after:
        convert_to_snn(quantize_model(net, 3))
    line = [s for s in str(before.value).splitlines() if 'Sigmoid' in s]
    assert line and line[0] in str(after.value).splitlines()
    assert 'gate' in line[0]


# -- function calls on the spiking path ---------------------------------------
class Toy(nn.Module):
    """Three layers; between the second and third QuantReLU a leaky ReLU
    written as functions: F.relu(y) - 0.3 * F.relu(-y)."""

    def __init__(self, functional=True):
        super().__init__()
        self.functional = functional
        self.conv1, self.relu1 = nn.Conv2d(3, 4, 3), QuantReLU(3, 1.0)
        self.conv2, self.relu2 = nn.Conv2d(4, 4, 1), QuantReLU(3, 1.0)
        self.conv3, self.relu3 = nn.Conv2d(4, 4, 1), QuantReLU(3, 1.0)
        if not functional:
            self.pos, self.neg = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        y = self.conv2(self.relu1(self.conv1(x)))
        y = self.relu2(y) + (F.relu(y) - 0.3 * F.relu(-y)
                             if self.functional else
                             self.pos(y) - 0.3 * self.neg(-y))
        return self.relu3(self.conv3(y))


def test_functional_relu_on_the_spiking_path_is_refused_by_path():
    with pytest.raises(UnconvertibleModelError) as err:
        convert_to_snn(Toy())
    msg = str(err.value)
    assert '<root>: F.relu -> use QuantReLU' in msg
    assert 'make_convertible=True' in msg


def test_make_convertible_routes_functional_relu_and_logs_it(logged):
    torch.manual_seed(0)
    net = Toy()
    done = make_convertible(net)
    assert done == [('fn_relu_0', 'F.relu', 'QuantReLU'),
                    ('fn_relu_1', 'F.relu', 'QuantReLU')]
    assert len(logged) == 1 and 'F.relu' in logged[0] and \
        'fn_relu_0, fn_relu_1' in logged[0]
    quantize_model(net, 3)
    assert find_unconvertible(net) == []
    # the same network written with modules: same QANN, same SNN
    torch.manual_seed(0)
    ref = quantize_model(Toy(functional=False), 3)
    ref.load_state_dict({k.replace('fn_relu_0', 'pos').replace(
        'fn_relu_1', 'neg'): v for k, v in net.state_dict().items()})
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))
        for mode in ('folded', 'streaming'):
            snn = convert_to_snn(net, timesteps=7, mode=mode)
            assert isinstance(snn.module.fn_relu_0, IFNeuron)
            assert torch.equal(snn(x), convert_to_snn(ref, timesteps=7,
                                                      mode=mode)(x))
    # a deep copy routes to its own children; training reaches the clips
    twin = copy.deepcopy(net).train()
    twin(x).sum().backward()
    assert twin.fn_relu_0.alpha.grad is not None
    assert net.fn_relu_0.alpha.grad is None


class Pooled(nn.Module):

    def __init__(self, op):
        super().__init__()
        self.op = op
        self.conv1, self.relu1 = nn.Conv2d(3, 4, 3), QuantReLU(3)
        self.conv2, self.relu2 = nn.Conv2d(4, 4, 1), QuantReLU(3)

    def forward(self, x):
        y = self.op(self.relu1(self.conv1(x)))
        return self.relu2(self.conv2(y))


@pytest.mark.parametrize('op, name', [
    (lambda y: F.max_pool2d(y, 2), 'F.max_pool2d'),
    (lambda y: torch.sigmoid(y) * 2, 'torch.sigmoid'),
    (lambda y: y * y.mean(), 'Tensor.mul'),
    (lambda y: y.clamp(0, 1), 'Tensor.clamp'),
    (lambda y: y.amax((2, 3), keepdim=True) + y, 'Tensor.amax'),
])
def test_other_functions_are_refused_alike_before_qat_and_at_conversion(
        op, name):
    with pytest.raises(UnconvertibleModelError) as before:
        make_convertible(Pooled(op))
    with pytest.raises(UnconvertibleModelError) as after:
        convert_to_snn(Pooled(op))
    line = f'  <root>: {name} -> '
    ours = [s for s in str(before.value).splitlines() if s.startswith(line)]
    assert ours and ours[0] in str(after.value).splitlines()


@pytest.mark.parametrize('op', [
    lambda y: F.max_pool2d(y, 1, 2),  # a subsampling (FPN extra levels)
    lambda y: 0.5 * y - y.mean((2, 3), keepdim=True),
    lambda y: F.avg_pool2d(torch.cat([y, y], 1)[:, :4], 2),
    lambda y: F.interpolate(y, scale_factor=2, mode='bilinear'),
    lambda y: y * torch.ones_like(y),  # a constant of y's shape
])
def test_linear_functions_pass(op):
    assert find_unconvertible(Pooled(op)) == []


def test_calls_before_the_first_neuron_and_in_skipped_modules_pass():

    class Gate(nn.Module):

        def forward(self, y):
            return y * torch.sigmoid(y)

    net = Pooled(Gate())
    assert [p for p, _, _ in find_unconvertible(net)] == ['op', 'op']
    assert find_unconvertible(net, skip=['op']) == []
    make_convertible(Pooled(Gate()), skip=['op'])
    image_side = Pooled(nn.Identity())
    image_side.conv1 = nn.Sequential(nn.MaxPool2d(1), nn.Conv2d(3, 4, 3))
    assert find_unconvertible(image_side) == []


class Stem(nn.Module):
    """Three levels of QuantReLU features for a neck."""

    def __init__(self, neck):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 3, 2, 1)
            for c_in, c_out in [(3, 8), (8, 16), (16, 32)])
        self.relus = nn.ModuleList(QuantReLU(3, 1.0) for _ in range(3))
        self.neck = neck

    def forward(self, x):
        feats = []
        for conv, relu in zip(self.convs, self.relus):
            x = relu(conv(x))
            feats.append(x)
        return self.neck(tuple(feats))


def _fpn():
    necks = pytest.importorskip('mmdet.models.necks')
    return necks.FPN(in_channels=[8, 16, 32], out_channels=8, num_outs=5,
                     add_extra_convs='on_input',
                     relu_before_extra_convs=True)


def test_mmdet_fpn_relu_before_extra_convs(logged):
    """Refused without make_convertible, by path; with it, routed to
    ``neck.fn_relu_0``, logged, and the SNN equals the QANN."""
    torch.manual_seed(0)
    with pytest.raises(UnconvertibleModelError, match='neck: F.relu'):
        convert_to_snn(Stem(_fpn()))
    net = Stem(_fpn()).eval()
    assert make_convertible(net) == [('neck.fn_relu_0', 'F.relu',
                                      'QuantReLU')]
    assert 'neck.fn_relu_0' in logged[0]
    quantize_model(net, 3)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
        out = convert_to_snn(net, timesteps=7)(x)
    for a, b in zip(out, ref):
        assert torch.allclose(a, b, atol=1e-5)


def test_only_the_modules_own_calls_are_routed():

    class Inner(nn.Module):

        def forward(self, y):
            return F.relu(y - 1)

    class Outer(nn.Module):

        def __init__(self):
            super().__init__()
            self.conv, self.relu = nn.Conv2d(3, 4, 3, 1, 1), QuantReLU(3)
            self.inner = Inner()

        def forward(self, x):
            y = self.relu(self.conv(x))
            return self.inner(F.relu(x)[:, :1] + y) + F.relu(-y)

    net = Outer()
    # F.relu(x) reads the image, off the spiking path: left alone
    assert make_convertible(net) == [
        ('fn_relu_0', 'F.relu', 'QuantReLU'),
        ('inner.fn_relu_0', 'F.relu', 'QuantReLU')]
    calls = []
    for m in (net.fn_relu_0, net.inner.fn_relu_0):
        m.register_forward_hook(lambda m, i, o: calls.append(m))
    net(torch.rand(1, 3, 8, 8))
    assert calls == [net.inner.fn_relu_0, net.fn_relu_0]


def test_calls_outside_any_module_are_refused_alike():
    """A task wrapper's spiking_path code is no module forward: nothing to
    route a call to, so both places refuse it with the same reason."""

    class Wrapper(nn.Module):

        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(3, 4, 3), QuantReLU(3))
            self.b = nn.Sequential(nn.Conv2d(4, 4, 1), QuantReLU(3))

        def spiking_path(self, x):
            return self.b(F.relu(self.a(x)))

    with pytest.raises(UnconvertibleModelError) as before:
        make_convertible(Wrapper())
    with pytest.raises(UnconvertibleModelError) as after:
        convert_to_snn(Wrapper())
    line = [s for s in str(before.value).splitlines() if 'F.relu' in s][0]
    assert 'outside any module' in line
    assert line in str(after.value).splitlines()


def test_trace_leaves_no_hooks_and_no_mode_behind():
    from torch.nn.modules import module as torch_module
    from torch.overrides import _get_current_function_mode_stack
    net = Toy()
    make_convertible(net)
    net(torch.rand(1, 3, 8, 8))
    assert not _get_current_function_mode_stack()
    assert not torch_module._global_forward_hooks
    assert not torch_module._global_forward_pre_hooks
    assert all(not m._forward_hooks for m in net.modules() if m is not net)


# -- one walker that keeps shared modules shared ------------------------------
def test_replace_modules_keeps_shared_objects_shared():
    shared, other = nn.ReLU(), nn.ReLU()
    inner = nn.Sequential(shared, nn.Conv2d(1, 1, 1), shared)
    net = nn.Sequential(inner, nn.Sequential(shared, other))
    seen = []

    def fn(path, m):
        seen.append(path)
        return nn.Tanh() if isinstance(m, nn.ReLU) else None

    done = replace_modules(net, fn, skip=['1.1'])
    assert [p for p, _, _ in done] == ['0.0', '0.2', '1.0']
    assert net[0][0] is net[0][2] is net[1][0]
    assert isinstance(net[0][0], nn.Tanh) and net[1][1] is other
    assert seen.count('0.0') == 1 and '0.2' not in seen  # once per object


def test_a_quant_relu_registered_twice_becomes_one_neuron():
    relu = QuantReLU(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), relu, nn.Conv2d(4, 4, 1), relu)
    snn = convert_to_snn(net, timesteps=7)
    assert isinstance(snn.module[1], IFNeuron) and \
        snn.module[1] is snn.module[3]
