"""SNN analysis: per-layer spike statistics, SynOps / energy, the report."""
import copy
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmpretrain.registry import MODELS
from torch import nn

from fastsnn_mm import (
    IFNeuron,
    QuantReLU,
    SignedIFNeuron,
    convert_to_snn,
    timestep_context,
)
from fastsnn_mm.analysis import (
    collect_layer_stats,
    layer_macs,
    synops_table,
    write_report,
)
from fastsnn_mm.datasets import generate_synthetic_voc, synthetic_metainfo

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'snn_report.py')
BITS = 2  # T = 3: short runs


def build_cls(cfg):
    """Build in mmpretrain's scope whatever scope an earlier test left."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def tiny_classifier(num_classes=4):
    return build_cls(dict(
        type='FastSNNImageClassifier',
        backbone=dict(type='QResNet', depth=18, base_channels=8,
                      act_cfg=dict(type='QuantReLU', bits=BITS, alpha=1.0)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=64,
                  loss=dict(type='CrossEntropyLoss'))))


#: BN (gamma range, beta range) by role: small gammas keep most per-step
#: neuron inputs inside [-theta, theta], where the signed neuron is exact;
#: the unsigned one still over-counts whenever a spike is later cancelled
BN_INIT = dict(bn1=((0.05, 0.15), (0.1, 0.4)),
               bn2=((0.05, 0.15), (-0.3, -0.1)),  # before the residual add
               downsample=((0.05, 0.15), (0.2, 0.4)))


@torch.no_grad()
def randomise(model, seed=0):
    """Random weights, BN statistics of one random batch, random BN affine
    terms (see BN_INIT) and alpha = 1."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                m.bias.uniform_(-0.2, 0.2)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # running stats = the batch's
    model.train()
    model.spiking_path(torch.randn(8, 3, 16, 16))
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            role = 'bn2' if name.endswith('bn2') else \
                'downsample' if 'downsample' in name else 'bn1'
            gamma, beta = BN_INIT[role]
            m.weight.uniform_(*gamma)
            m.bias.uniform_(*beta)
        elif isinstance(m, QuantReLU):
            m.alpha.fill_(1.0)
    return model.eval()


@pytest.fixture(scope='module')
def tiny():
    qann = randomise(tiny_classifier())
    snns = {n: convert_to_snn(qann, neuron=n) for n in ('signed', 'unsigned')}
    x = torch.randn(3, 3, 16, 16)
    stats = {n: collect_layer_stats(qann, s, [x]) for n, s in snns.items()}
    return qann, snns, x, stats


def test_layers_in_execution_order_with_rates_in_range(tiny):
    qann, _, _, stats = tiny
    names = [n for n, m in qann.named_modules() if isinstance(m, QuantReLU)]
    for neuron, s in stats.items():
        assert s['timesteps'] == 2 ** BITS - 1
        assert [r['layer'] for r in s['layers']] == names
        for r in s['layers']:
            for key in ('firing_rate', 'pos_rate', 'neg_rate', 'qann_rate',
                        'mismatch'):
                assert 0.0 <= r[key] <= 1.0, (neuron, r)
            assert r['firing_rate'] == pytest.approx(
                r['pos_rate'] + r['neg_rate'])
    assert all(r['neg_rate'] == 0 for r in stats['unsigned']['layers'])
    assert any(r['neg_rate'] > 0 for r in stats['signed']['layers'])


def test_first_layer_exact_and_signed_never_worse(tiny):
    _, _, _, stats = tiny
    signed, unsigned = stats['signed']['layers'], stats['unsigned']['layers']
    # constant input: both neurons count exactly the QANN level
    assert signed[0]['mismatch'] == 0 and unsigned[0]['mismatch'] == 0
    assert signed[0]['firing_rate'] > 0
    for s, u in zip(signed, unsigned):
        assert s['mismatch'] <= u['mismatch'], (s['layer'], s, u)
    # the test net does show sequential error, and signed removes most of it
    total_s = sum(r['mismatch'] for r in signed)
    total_u = sum(r['mismatch'] for r in unsigned)
    assert total_u > 0.05 and total_s < 0.2 * total_u


def largest_step_input(snn, x):
    """{neuron layer: max |input| / theta over steps}, in execution order."""
    T, seen = snn.snn_cfg['timesteps'], {}
    hooks = [n.register_forward_hook(
        lambda m, inp, out, name=name: seen.__setitem__(
            name, (inp[0].abs().max() / m.theta).item()))
        for name, n in snn.named_modules() if isinstance(n, IFNeuron)]
    with torch.no_grad(), timestep_context(snn, T, x.shape[0], 'folded'):
        snn.spiking_path(x)
    for h in hooks:
        h.remove()
    return seen


def test_signed_exact_where_theory_says_so(tiny):
    """With every per-step input in [-theta, theta] a signed neuron needs at
    most one spike per step either way, so its net count is exactly
    round(sum of inputs / theta): the QANN level, as long as all layers
    before it were exact too."""
    _, snns, x, stats = tiny
    bound = largest_step_input(snns['signed'], x)
    rows = stats['signed']['layers']
    assert list(bound) == [r['layer'] for r in rows]
    assert rows[0]['mismatch'] == 0  # constant input: exact at any size
    covered = 0
    for r in rows[1:]:
        if bound[r['layer']] > 1.0:
            break
        assert r['mismatch'] == 0, r
        covered += 1
    assert covered >= 1  # the test net must reach past the first layer


def test_call_sites_of_a_reused_activation_are_separate_layers():
    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4, 3)
            self.act = QuantReLU(bits=2, alpha=1.0)

        def forward(self, x):
            x = self.act(self.conv2(self.act(self.conv1(x))))
            return self.fc(x.mean((2, 3)))

    torch.manual_seed(1)
    qann = Reuse().eval()
    snn = convert_to_snn(qann, neuron='signed')  # a SpikingNetwork
    x = torch.randn(2, 2, 8, 8)
    stats = collect_layer_stats(qann, snn, [x, x])
    assert [r['layer'] for r in stats['layers']] == ['act', 'act#2']
    assert stats['layers'][0]['mismatch'] == 0
    table = synops_table(stats, layer_macs(qann, x))
    assert [(r['layer'], r['fed_by']) for r in table['layers']] == [
        ('conv1', 'image'), ('conv2', 'act'), ('fc', 'act#2')]
    assert table['layers'][0]['macs'] == 4 * 2 * 9 * 64


def test_synops_one_row_per_weighted_layer(tiny):
    qann, _, x, stats = tiny
    macs = layer_macs(qann, x)
    weighted = [n for n, m in qann.named_modules()
                if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert macs is not None and all(macs[n] > 0 for n in weighted)
    for neuron, s in stats.items():
        # mmengine's counts agree with the shapes seen by the hooks
        assert {f['layer']: f['macs'] for f in s['feeds']} == macs
        table = synops_table(s, macs)
        rows = table['layers']
        assert sorted(r['layer'] for r in rows) == sorted(weighted)
        first = rows[0]
        assert first['fed_by'] == 'image' and first['synops'] == 0
        assert first['analog_macs'] == first['macs']
        assert all(r['fed_by'] != 'image' for r in rows[1:])
        assert all(r['ann_energy_uj'] > 0 and r['snn_energy_uj'] > 0
                   for r in rows)
        t = table['total']
        assert t['macs'] == sum(macs.values())
        assert t['ann_energy_uj'] == pytest.approx(t['macs'] * 4.6e-6)
        assert t['snn_energy_uj'] == pytest.approx(
            (t['analog_macs'] * 4.6 + t['synops'] * 0.9) * 1e-6)
    half = synops_table(stats['signed'], macs, e_mac=2.3, e_ac=0.45)
    full = synops_table(stats['signed'], macs)
    assert half['total']['snn_energy_uj'] == pytest.approx(
        full['total']['snn_energy_uj'] / 2)


def test_reconversion_changes_timesteps_and_neuron(tiny):
    qann, snns, x, _ = tiny
    snn = copy.deepcopy(snns['signed'])
    snn.to_snn(timesteps=7, neuron='unsigned')
    neurons = snn.neurons
    assert snn.snn_cfg['timesteps'] == 7
    # T lives in the settings alone, not on each neuron
    assert all(type(n) is IFNeuron and 'timesteps' not in vars(n)
               for n in neurons)
    assert [n.theta.item() for n in neurons] == \
        [n.theta.item() for n in snns['signed'].neurons]
    stats = collect_layer_stats(qann, snn, [x])
    assert stats['timesteps'] == 7
    snn.to_snn(neuron='signed')  # default T again: 2^b - 1
    assert snn.snn_cfg['timesteps'] == 2 ** BITS - 1
    assert all(type(n) is SignedIFNeuron for n in snn.neurons)


def test_bad_batches_give_a_clear_error(tiny):
    qann, snns, _, _ = tiny
    with pytest.raises(TypeError, match='input tensors'):
        collect_layer_stats(qann, snns['signed'], [[1, 2]])


def test_write_report_files(tiny, tmp_path):
    qann, _, x, stats = tiny
    macs = layer_macs(qann, x)
    results = [dict(model='QANN', neuron='-', T='-', acc=0.5)] + [
        dict(model='SNN', neuron=n, T=t, acc=0.1 * t)
        for n in stats for t in (1, 3)]
    paths = write_report(str(tmp_path), results, stats,
                         {n: synops_table(s, macs) for n, s in stats.items()})
    text = open(paths['markdown']).read()
    assert '## Per-layer spikes (T = 3)' in text and 'signed mismatch' in text
    assert json.load(open(paths['json']))['metrics'] == results
    # metric vs T, firing rate, mismatch, SynOps per layer, energy
    assert len(paths['plots']) == 5
    assert all(os.path.getsize(p) > 1000 for p in paths['plots'])


# -- the script, end to end --------------------------------------------------
DEMO_CONFIG = osp.join(REPO, 'configs', 'fastsnn_cls',
                       'qresnet_synthetic_cls_3bit.py')
# used when the demo config is missing: test split only
FALLBACK_CONFIG = """
_base_ = ['{repo}/configs/_base_/datasets/synthetic_voc_cls.py',
          'mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
model = dict(
    type='FastSNNImageClassifier',
    backbone=dict(type='QResNet', depth=18, act_cfg=dict(type='ReLU')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes={num_classes},
              loss=dict(type='CrossEntropyLoss')),
    quant=dict(bits=3))
train_dataloader = None
val_dataloader = None
val_evaluator = None
test_cfg = dict()
"""


def run_script(*args):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)],
                          capture_output=True, text=True, cwd=REPO,
                          timeout=600)


@pytest.fixture(scope='module')
def config_and_checkpoint(tmp_path_factory):
    """The demo config narrowed to width 8 and 2 bits, a 20-crop synthetic
    test set, and a random-weight checkpoint of that model."""
    from mmengine import Config
    tmp = tmp_path_factory.mktemp('snn_report')
    root = str(tmp / 'data')
    generate_synthetic_voc(root, 2, 6, seed=0, size=64)
    cfg_path = DEMO_CONFIG
    if not osp.isfile(cfg_path):
        cfg_path = str(tmp / 'tiny_cls.py')
        with open(cfg_path, 'w') as f:
            f.write(FALLBACK_CONFIG.format(
                repo=REPO, num_classes=len(synthetic_metainfo()['classes'])))
    options = {'test_dataloader.dataset.data_root': root + '/',
               'test_dataloader.batch_size': 4,
               'model.backbone.base_channels': 8,
               'model.head.in_channels': 64,
               'model.quant.bits': BITS}
    cfg = Config.fromfile(cfg_path)
    cfg.merge_from_dict(options)
    model = randomise(build_cls(cfg.model))
    ckpt = tmp / 'qann.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    args = [cfg_path, ckpt, '--work-dir', tmp / 'work', '--cfg-options'] + [
        f'{k}={v}' for k, v in options.items()]
    return args, tmp


def test_script_end_to_end(config_and_checkpoint):
    args, tmp = config_and_checkpoint
    out = tmp / 'report'
    proc = run_script(*args[:2], '--timesteps', 1, 3, '--num-batches', 1,
                      '--out-dir', out, *args[2:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(os.listdir(out))
    assert {'report.md', 'report.json', 'firing_rate.png',
            'mismatch.png', 'synops.png', 'energy.png'} <= set(names)
    assert any(n.startswith('metric_') and n.endswith('.png') for n in names)
    report = json.load(open(out / 'report.json'))
    metrics = report['metrics']
    assert [(r['model'], r['neuron'], r['T']) for r in metrics] == [
        ('QANN', '-', '-'), ('SNN', 'signed', 1), ('SNN', 'unsigned', 1),
        ('SNN', 'signed', 3), ('SNN', 'unsigned', 3)]
    signed = report['layer_stats']['signed']['layers']
    unsigned = report['layer_stats']['unsigned']['layers']
    assert signed[0]['mismatch'] == 0 == unsigned[0]['mismatch']
    assert all(s['mismatch'] <= u['mismatch']
               for s, u in zip(signed, unsigned))
    assert report['synops']['signed']['total']['snn_energy_uj'] > 0
    text = (out / 'report.md').read_text()
    assert '## QANN vs SNN' in text and 'SynOps' in text
    assert '[snn_report 4/4]' in proc.stdout + proc.stderr


@pytest.mark.parametrize('argv, message', [
    (['--timesteps', '0'], '--timesteps must all be >= 1, got 0'),
    (['--num-batches', '0'], '--num-batches must be >= 1, got 0'),
    ([], 'checkpoint missing.pth not found')])
def test_script_bad_arguments_one_line(argv, message, capsys):
    spec = importlib.util.spec_from_file_location('snn_report', SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    ckpt = 'missing.pth' if not argv else __file__
    with pytest.raises(SystemExit) as exc:
        script.parse_args([DEMO_CONFIG, ckpt] + argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err == f'error: {message}\n'


def test_report_tables_keep_numpy_metrics():
    # mmseg's IoUMetric reports numpy float32 values
    import numpy as np

    from fastsnn_mm.analysis.report import _metrics_md, metric_keys
    rows = [dict(model='QANN', neuron='-', T='-', mIoU=np.float32(61.25),
                 aAcc=np.float64(90.5)),
            dict(model='SNN', neuron='signed', T=7, mIoU=np.float32(60.5),
                 aAcc=np.float64(90.0))]
    assert metric_keys(rows) == ['mIoU', 'aAcc']
    table = _metrics_md(rows)
    assert '61.25' in table and '| SNN | signed | 7 | 60.5 | 90 |' in table


def test_synops_of_a_layer_reading_parallel_branches():
    # ASPP-like: two branches with very different rates, concatenated; the
    # layer reading the concat gets both, not just the branch that ran last
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(2, 4, 3, padding=1)
            self.act0 = QuantReLU(bits=2, alpha=1.0)
            self.a = nn.Conv2d(4, 4, 1)
            self.act_a = QuantReLU(bits=2, alpha=0.3)  # fires often
            self.b = nn.Conv2d(4, 4, 1)
            self.act_b = QuantReLU(bits=2, alpha=8.0)  # hardly fires
            self.fuse = nn.Conv2d(8, 3, 1)

        def forward(self, x):
            x = self.act0(self.stem(x))
            x = torch.cat([self.act_a(self.a(x)), self.act_b(self.b(x))], 1)
            return self.fuse(x).mean((2, 3))

    torch.manual_seed(0)
    qann = Branches().eval()
    snn = convert_to_snn(qann, neuron='signed')
    x = torch.randn(2, 2, 8, 8)
    stats = collect_layer_stats(qann, snn, [x])
    rate = {r['layer']: r['firing_rate'] for r in stats['layers']}
    assert rate['act_a'] > 5 * rate['act_b']
    table = synops_table(stats, layer_macs(qann, x))
    fuse = next(r for r in table['layers'] if r['layer'] == 'fuse')
    expected = fuse['macs'] * (rate['act_a'] + rate['act_b']) / 2 * 3
    assert fuse['synops'] == pytest.approx(expected, rel=1e-6)


class Churn(nn.Module):
    """A net whose +1/-1 pairs are known by construction (T = 3, theta 1).

    act1 sees a constant 1 and 1/3: spikes 1,1,1 and 0,1,0. conv2 feeds
    act2 (a) 1*first - 2*second = 1, -1, 1 per step: the signed neuron fires
    +1, -1, +1 (one pair, net 1 = the QANN level round(3 * 1/3)); (b) the
    first alone: three +1; (c) the second alone: one +1.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 1, bias=False)
        self.act1 = QuantReLU(bits=2, alpha=1.0)
        self.conv2 = nn.Conv2d(2, 3, 1, bias=False)
        self.act2 = QuantReLU(bits=2, alpha=1.0)
        self.fc = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.tensor([1.0, 1 / 3]).view(2, 1, 1,
                                                                    1))
            self.conv2.weight.copy_(torch.tensor(
                [[1.0, -2.0], [1.0, 0.0], [0.0, 1.0]]).view(3, 2, 1, 1))
            self.fc.weight.fill_(0.5)

    def forward(self, x):
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.fc(x.flatten(1))


@pytest.fixture(scope='module')
def churn_stats():
    qann = Churn().eval()
    x = torch.ones(2, 1, 1, 1)  # two images
    stats = {n: collect_layer_stats(qann, convert_to_snn(qann, neuron=n),
                                    [x, x]) for n in ('signed', 'unsigned')}
    return qann, x, stats


def test_churn_counts_cancelling_pairs_per_layer(churn_stats):
    from fastsnn_mm.analysis import cancelling_pairs
    _, _, stats = churn_stats
    act1, act2 = stats['signed']['layers']
    assert stats['signed']['timesteps'] == 3
    assert act1['cancel_pairs'] == 0 and act1['churn_rate'] == 0
    assert act2['mismatch'] == 0  # the pairs do not change net counts
    assert act2['cancel_pairs'] == pytest.approx(1 / 3)  # 1 of 3 neurons
    assert act2['churn_rate'] == pytest.approx(2 / 9)
    assert act2['firing_rate'] == pytest.approx(7 / 9)  # 3 + 3 + 1 spikes
    assert act2['churn_share'] == pytest.approx(2 / 7)
    # |spikes| = |net count| + 2 pairs, per layer
    net_rate = act2['qann_rate']  # net counts equal the QANN levels here
    assert act2['firing_rate'] == pytest.approx(net_rate +
                                                act2['churn_rate'])
    for r in stats['unsigned']['layers']:
        assert r['cancel_pairs'] == 0 and r['churn_share'] == 0
    spikes = torch.tensor([[1, 1, 0, 0], [-1, 1, -1, 0], [1, 1, 1, 0]])
    assert cancelling_pairs(spikes).tolist() == [1, 0, 1, 0]


def test_churn_share_of_synops_and_energy(churn_stats, tmp_path):
    qann, x, stats = churn_stats
    macs = layer_macs(qann, x)
    signed = synops_table(stats['signed'], macs)
    fc = next(r for r in signed['layers'] if r['layer'] == 'fc')
    # fc: 7 input spikes per image, 2 of them a cancelling pair, each
    # spike 2 accumulates (2 outputs)
    assert fc['synops'] == pytest.approx(14)
    assert fc['churn_synops'] == pytest.approx(4)
    assert fc['churn_share'] == pytest.approx(4 / 14)
    conv2 = next(r for r in signed['layers'] if r['layer'] == 'conv2')
    assert conv2['churn_synops'] == 0 and conv2['synops'] == pytest.approx(
        4 * 3)  # act1: 4 spikes per image, 3 outputs each
    t = signed['total']
    assert t['churn_synops'] == pytest.approx(4)
    assert t['churn_share'] == pytest.approx(4 / 26)
    assert t['churn_energy_uj'] == pytest.approx(4 * 0.9e-6)
    unsigned = synops_table(stats['unsigned'], macs)
    assert unsigned['total']['churn_synops'] == 0

    synops = dict(signed=signed, unsigned=unsigned)
    rows = [dict(model='QANN', neuron='-', T='-', acc=1.0)]
    paths = write_report(str(tmp_path), rows, stats, synops)
    names = {osp.basename(p) for p in paths['plots']}
    assert {'synops.png', 'energy.png', 'firing_rate.png'} <= names
    for p in paths['plots']:
        assert os.path.getsize(p) > 1000
    text = open(paths['markdown']).read()
    assert 'signed pairs' in text and 'churn SynOps' in text
    assert 'of all SynOps' in text and '15.38%' in text  # 4 / 26
    saved = json.load(open(paths['json']))
    assert saved['layer_stats']['signed']['layers'][1][
        'cancel_pairs'] == pytest.approx(1 / 3)
    assert saved['synops']['signed']['total']['churn_synops'] == \
        pytest.approx(4)


class LateInput(nn.Module):
    """Three 2-bit layers (theta = 1, T = 3) on a constant input of 1/3:
    act1 counts exactly 1 (at step 2); conv2 triples that spike into one
    input of 3 at step 2, which act2 can only answer with 2 spikes (steps 2
    and 3) where its summed input asks for 3: its own timing error; act3
    then gets 1, 1 at steps 2 and 3 and counts the 2 its summed input asks
    for, where the QANN level is 3: an inherited error."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 1, bias=False)
        self.act1 = QuantReLU(bits=2, alpha=1.0)
        self.conv2 = nn.Conv2d(1, 1, 1, bias=False)
        self.act2 = QuantReLU(bits=2, alpha=1.0)
        self.conv3 = nn.Conv2d(1, 1, 1, bias=False)
        self.act3 = QuantReLU(bits=2, alpha=1.0)
        with torch.no_grad():
            self.conv1.weight.fill_(1.0)
            self.conv2.weight.fill_(3.0)
            self.conv3.weight.fill_(1.0)

    def forward(self, x):
        x = self.act1(self.conv1(x))
        return self.act3(self.conv3(self.act2(self.conv2(x))))


def test_mismatch_split_into_inherited_and_timing():
    from fastsnn_mm.analysis.layer_stats import summed_input_count
    qann = LateInput().eval()
    x = torch.full((2, 1, 1, 1), 1 / 3)
    act1, act2, act3 = collect_layer_stats(
        qann, convert_to_snn(qann, neuron='signed'), [x])['layers']
    assert act1['mismatch'] == 0
    assert act2['mismatch'] == 1 and act2['timing_mismatch'] == 1
    assert act2['inherited_mismatch'] == 0
    assert act3['mismatch'] == 1 and act3['inherited_mismatch'] == 1
    assert act3['timing_mismatch'] == 0
    # one input per step, or the same input at every step; clamped to [0, T]
    steps = torch.tensor([0.0, 0.2, 3.0, 0.2, 0.0, 0.2]).view(6, 1)  # [T*B]
    assert summed_input_count(steps, 1.0, 3, 2).tolist() == [[3.0], [1.0]]
    assert summed_input_count(torch.tensor([[2.0], [-1.0]]), 1.0, 3,
                              2).tolist() == [[3.0], [0.0]]


def test_script_reports_a_finetuned_snn_next_to_the_plain_one(
        config_and_checkpoint):
    """--finetuned: the tuned SNN's metric row and per-layer statistics,
    against the same QANN; a checkpoint without meta.snn is one error."""
    args, tmp = config_and_checkpoint
    qann = torch.load(args[1], weights_only=True)['state_dict']
    snn_state = {k.replace('.alpha', '.theta') if k.endswith('.alpha')
                 else k: v.clone() for k, v in qann.items()}
    bias = next(k for k in snn_state if k.endswith('bn1.bias'))
    snn_state[bias] += 0.3  # a tuned layer: the counts after it change
    tuned = tmp / 'snn_finetuned_signed_T3.pth'
    torch.save(dict(meta=dict(snn=dict(timesteps=3, neuron='signed')),
                    state_dict=snn_state), tuned)
    out = tmp / 'report_tuned'
    proc = run_script(*args[:2], '--timesteps', 3, '--neuron', 'signed',
                      '--num-batches', 1, '--out-dir', out, '--finetuned',
                      tuned, *args[2:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.load(open(out / 'report.json'))
    assert [(r['model'], r['T']) for r in report['metrics']] == [
        ('QANN', '-'), ('SNN', 3), ('SNN fine-tuned', 3)]
    plain = report['layer_stats']['signed']['layers']
    after = report['layer_stats']['signed fine-tuned']['layers']
    assert [r['layer'] for r in plain] == [r['layer'] for r in after]
    assert plain != after  # the shifted bias shows in the statistics
    assert 'signed fine-tuned mismatch' in (out / 'report.md').read_text()
    bad = tmp / 'not_tuned.pth'
    torch.save(dict(state_dict=snn_state), bad)
    proc = run_script(*args[:2], '--finetuned', bad, *args[2:])
    assert proc.returncode == 2
    assert 'is not a fine-tuned SNN checkpoint (no meta.snn)' in proc.stderr
