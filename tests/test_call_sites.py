"""One quantizer per call site: mm ResNet blocks call one ``self.relu`` at
two places; after surgery each place has its own QuantReLU (own alpha), the
SNN one neuron layer per place, and checkpoints of the shared form load."""
import copy

import pytest
import torch
from torch import nn

from fastsnn_mm.quantization import CallSiteActivation, QuantReLU
from fastsnn_mm.quantization import call_sites as call_sites_module
from fastsnn_mm.quantization.call_sites import split_call_sites
from fastsnn_mm.spiking import convert_to_snn
from fastsnn_mm.utils.checkpoint_check import check_checkpoint_fits

pytestmark = pytest.mark.usefixtures('one_thread')

#: tiny ResNet-18 for CIFAR from mmpretrain: 1 stem ReLU + 8 blocks whose
#: ReLU module is called twice = 9 modules, 17 call sites
CALL_SITES = 17


def mm_classifier(per_call_site=True, with_cp=False):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import fastsnn_mm  # noqa: F401  (registers the wrapper)

    # an earlier test (test_chains.py) may leave another package's scope
    # as the default
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(dict(
            type='FastSNNImageClassifier',
            backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
                          base_channels=8, out_indices=(3, ),
                          with_cp=with_cp),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=4, in_channels=64,
                      loss=dict(type='CrossEntropyLoss')),
            quant=dict(bits=3, per_call_site=per_call_site)))


def randomised(model, seed=0):
    """Trained-looking BN statistics and clips, so outputs are not trivial
    and every clip differs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
            if isinstance(m, QuantReLU):
                m.alpha.uniform_(0.5, 2.0, generator=g)
    return model.eval()


@pytest.fixture
def logged(log_of):
    return log_of(call_sites_module)


def test_shared_relu_becomes_one_quant_relu_per_call_site():
    model = mm_classifier()
    block = model.backbone.layer1[0]
    assert isinstance(block.relu, CallSiteActivation)
    first, second = block.relu.sites
    assert isinstance(first, QuantReLU) and isinstance(second, QuantReLU)
    assert first.alpha is not second.alpha
    quants = {m for m in model.modules() if isinstance(m, QuantReLU)}
    assert len(quants) == CALL_SITES
    assert len({id(q.alpha) for q in quants}) == CALL_SITES
    # the first call (after conv1/bn1) goes to site 0, the one after the
    # residual add to site 1, at every forward
    seen = []
    hooks = [s.register_forward_hook(
        lambda m, i, o, k=k: seen.append(k)) for k, s in
        enumerate(block.relu.sites)]
    x = torch.randn(2, 3, 32, 32)
    model.train()
    for _ in range(2):
        model(x)
    for h in hooks:
        h.remove()
    assert seen == [0, 1, 0, 1]
    # separate clips learn separately
    loss = model(x).sum()
    loss.backward()
    assert first.alpha.grad is not None and second.alpha.grad is not None
    assert first.alpha.grad.item() != second.alpha.grad.item()


def test_snn_has_one_neuron_layer_per_call_site():
    model = randomised(mm_classifier())
    x = torch.randn(2, 3, 32, 32)
    qann = model(x)
    snn = convert_to_snn(model, timesteps=7)  # a deep copy
    assert len(snn.neurons) == CALL_SITES
    with torch.no_grad():
        snn(x)  # the first batch of a shape also runs a one-image sizing pass
    calls = {}
    hooks = [n.register_forward_hook(
        lambda m, i, o: calls.__setitem__(m, calls.get(m, 0) + 1))
        for n in snn.neurons]
    with torch.no_grad():
        out = snn(x)
    for h in hooks:
        h.remove()
    assert len(calls) == CALL_SITES and set(calls.values()) == {1}
    assert out.shape == qann.shape and torch.isfinite(out).all()


def test_shared_form_checkpoint_loads_with_a_log_line(tmp_path, logged):
    from mmengine.runner import load_checkpoint
    shared = randomised(mm_classifier(per_call_site=False))
    assert not any(isinstance(m, CallSiteActivation)
                   for m in shared.modules())
    path = str(tmp_path / 'shared.pth')
    torch.save({'state_dict': shared.state_dict()}, path)
    split = mm_classifier().eval()
    check_checkpoint_fits(split, path, 'test')  # the tools' check passes
    load_checkpoint(split, path, map_location='cpu', strict=True)
    lines = [m for m in logged if 'the checkpoint has one clip' in m]
    assert len(lines) == 1 and 'backbone.layer1.0.relu' in lines[0], logged
    relu = split.backbone.layer2[1].relu
    shared_alpha = shared.backbone.layer2[1].relu.alpha
    # copies of one clip
    assert all(torch.equal(s.alpha, shared_alpha) for s in relu.sites)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        # same convs, batch and clips: the same sums
        assert torch.equal(split(x), shared(x))  # same clips, same bits
        a = convert_to_snn(split, timesteps=5)(x)
        b = convert_to_snn(shared, timesteps=5)(x)
    # the same SNN, plan and batch: the same sums
    assert torch.equal(a, b)
    # an SNN checkpoint of the shared form (thresholds) loads as well
    snn_state = convert_to_snn(shared, timesteps=7).state_dict()
    fresh = mm_classifier().eval()
    fresh.load_state_dict(snn_state)
    with torch.no_grad():
        # the same weights and clips, the same batch: the same sums
        assert torch.equal(fresh(x), shared(x))


def test_checkpointed_blocks_route_their_recomputed_calls():
    """``with_cp`` recomputes a block's first ReLU call in backward, after
    the block's forward: the gradients match a model without it."""
    plain, cp = mm_classifier(), mm_classifier(with_cp=True)
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    grads = []
    for model in (plain, cp):
        model.train()
        model(x).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                      if n.endswith('alpha')})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name])


class TwoCallers(nn.Module):
    """One ReLU module called by two different modules' forwards."""

    class Branch(nn.Module):

        def __init__(self, act):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.act = [act]  # not registered here: the root holds it

        def forward(self, x):
            return self.act[0](self.conv(x))

    def __init__(self):
        super().__init__()
        self.act = QuantReLU(3)
        self.a, self.b = self.Branch(self.act), self.Branch(self.act)

    def forward(self, x):
        return self.a(x) + self.b(x)


def test_module_called_from_two_forwards_stays_shared(logged):
    net = TwoCallers()
    x = torch.randn(1, 3, 8, 8)
    assert split_call_sites(net, lambda: net(x)) == {}
    assert isinstance(net.act, QuantReLU)
    assert any('kept shared' in m and 'act' in m for m in logged), logged


def test_sequential_repeating_a_module_gets_a_site_per_position():
    relu = QuantReLU(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), relu, nn.Conv2d(4, 4, 1), relu)
    x = torch.randn(1, 3, 8, 8)
    before = net(x)
    assert split_call_sites(net, lambda: net(x)) == {'1': 2}
    assert net[1] is net[3] and isinstance(net[1], CallSiteActivation)
    net[1].sites[1].alpha.data.fill_(0.5)
    # a copy run on the same batch: the same sums
    assert torch.equal(copy.deepcopy(net)(x), net(x))  # routing survives
    assert not torch.equal(net(x), before)  # the second site's own clip


class _ListedRelu(nn.Module):
    """ERFNet's NonBottleneck1d in small: one ReLU object at three places
    of a ModuleList and as an attribute, four calls per forward."""

    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()
        self.layers = nn.ModuleList([
            nn.Conv2d(3, 4, 3, padding=1), self.act,
            nn.Conv2d(4, 4, 3, padding=1), self.act,
            nn.Conv2d(4, 4, 3, padding=1), self.act,
            nn.Conv2d(4, 3, 3, padding=1)])

    def forward(self, x):
        out = x
        for layer in self.layers:
            out = layer(out)
        return self.act(out)  # ERFNet adds its input first


def test_relu_listed_at_several_places_is_quantized_at_every_place():
    """Surgery replaces every place a module is registered at (mmseg's
    ERFNet converted with a plain ReLU left at two of them), and each of
    the four calls gets a site of its own."""
    from fastsnn_mm.quantization import quantize_model
    from fastsnn_mm.spiking.converter import find_unconvertible
    model = quantize_model(_ListedRelu(), bits=3)
    places = [model.act, model.layers[1], model.layers[3], model.layers[5]]
    assert all(isinstance(p, QuantReLU) for p in places)
    assert all(p is places[0] for p in places)  # shared stays shared
    split = split_call_sites(model, lambda: model(torch.zeros(1, 3, 8, 8)))
    assert split == {'act': 4}
    assert all(p is model.act for p in (model.layers[1], model.layers[3],
                                        model.layers[5]))
    assert not find_unconvertible(model)
    x = torch.rand(2, 3, 8, 8)
    snn = convert_to_snn(model, timesteps=7)
    assert snn(x).shape == x.shape
