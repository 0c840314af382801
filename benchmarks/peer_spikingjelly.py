"""Our converted network against the same weights run by SpikingJelly.

``bench_snn.py --peer spikingjelly``: users choose between this package and
SpikingJelly for whole networks, so the comparison is one network, not one
neuron. The benchmark QResNet-18 (``bench_net.build``) is converted once by
``convert_to_snn(neuron='unsigned')`` (SpikingJelly has no signed rule) and
run two ways on the same input for the same T:

* ours: the converted network as ``convert_to_snn`` returns it (the default
  pass plan of the device; layers before the first neuron run once);
* SpikingJelly 2.0, multi-step: the same module tree with each of our
  neurons replaced by SpikingJelly's ``IFNode(v_threshold=theta,
  v_reset=None, step_mode='m')`` (reset by subtraction) whose membrane
  starts at theta / 2 (``set_reset_value``), its 0/1 spikes times theta
  (ours emit spike x theta), and every stateless layer (conv, BN, linear,
  pooling) in a ``SeqToANNContainer``, which folds time into the batch as
  SpikingJelly's containers do; the input repeated T times
  ([T, B, C, H, W]); ``functional.reset_net`` before each batch; the output
  summed over T in time order and divided by T, as our runner averages.

Reported per T: median milliseconds of each (paired rounds, CUDA events on
a GPU), the median ratio SpikingJelly / ours, the peak working memory of
each (a fresh process per case on the CPU, the CUDA allocator's peak on a
GPU), and whether the outputs agree. SpikingJelly is a benchmark-only
extra: ``pip install --no-deps spikingjelly==2.0.0 loguru``.
"""
import copy
import json

import torch
from bench_net import build, cpu_peak, cuda_peak, model_bytes, run_child
from core_import import import_core
from results import environment, record
from timing import paired
from torch import nn

#: memory cases ``bench_snn.py --child`` runs for this comparison
PEER_CASES = ('peer-ours', 'peer-spikingjelly')

#: layers with no state over time: SpikingJelly runs them time-folded
STATELESS = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.AvgPool2d,
             nn.AdaptiveAvgPool2d)

INSTALL_HINT = 'pip install --no-deps spikingjelly==2.0.0 loguru'


def import_spikingjelly():
    """SpikingJelly's activation_based package, or exit saying how to
    install it."""
    try:
        from spikingjelly import activation_based
        from spikingjelly.activation_based import functional, layer, neuron  # noqa: F401
    except ImportError as err:
        raise SystemExit(f'error: --peer spikingjelly needs SpikingJelly '
                         f'({err}); install it with: {INSTALL_HINT}')
    return activation_based


class ScaledIFNode(nn.Module):
    """SpikingJelly's multi-step IFNode at our threshold and starting
    membrane, its spikes scaled by theta as our neurons' output is."""

    def __init__(self, sj, theta: float):
        super().__init__()
        self.node = sj.neuron.IFNode(v_threshold=theta, v_reset=None,
                                     step_mode='m')
        self.node.set_reset_value('v', theta / 2)  # V0 = theta / 2, as ours
        self.node.reset()
        self.theta = theta

    def forward(self, x_seq):
        return self.node(x_seq) * self.theta


def spikingjelly_network(converted: nn.Module) -> nn.Module:
    """A SpikingJelly multi-step copy of our converted module tree."""
    sj = import_spikingjelly()
    import_core()
    from fastsnn_mm.spiking import IFNeuron
    net = copy.deepcopy(converted)

    def replace(parent):
        for name, child in parent.named_children():
            if isinstance(child, IFNeuron):
                if child.signed:
                    raise SystemExit('error: SpikingJelly has no signed IF '
                                     "rule: convert with neuron='unsigned'")
                setattr(parent, name,
                        ScaledIFNode(sj, float(child.theta.item())))
            elif isinstance(child, STATELESS):
                setattr(parent, name, sj.layer.SeqToANNContainer(child))
            else:
                replace(child)
    replace(net)
    return net


def run_spikingjelly(net, x, T):
    """One batch through SpikingJelly's network: [B, ...] in, the output
    averaged over T out."""
    from spikingjelly.activation_based import functional
    functional.reset_net(net)
    out = net(x.unsqueeze(0).repeat(T, *([1] * x.dim())))
    total = out[0]
    for t in range(1, T):  # in time order, as our runner sums
        total = total + out[t]
    return total / T if T > 1 else total


def both_ways(args, T, device):
    """(ours, SpikingJelly's) as callables of x, from one conversion."""
    import_core()
    from fastsnn_mm import convert_to_snn
    net = build(args.width, args.bits).to(device)
    ours = convert_to_snn(net, timesteps=T, neuron='unsigned', copy=False)
    theirs = spikingjelly_network(ours.module)
    return ours, (lambda x: run_spikingjelly(theirs, x, T)), theirs


def memory_case(args):
    """``bench_snn.py --child peer-...``: one side's second inference in
    this fresh process (the first warms up); prints its peak working memory
    as JSON."""
    T = args.mem_timesteps
    x = torch.randn(args.batch, 3, args.size, args.size)
    ours, sj_run, theirs = both_ways(args, T, 'cpu')
    if args.case == 'peer-spikingjelly':
        del ours
        fn, held = (lambda: sj_run(x)), theirs
    else:
        del sj_run, theirs
        fn, held = (lambda: ours(x)), ours
    with torch.no_grad():
        fn()  # warm-up: lazy inits, our cached pass plan
        work = cpu_peak(fn)
    print(json.dumps(dict(case=args.case, work=work, model=model_bytes(held),
                          state=0)))


def agreement(a, b) -> str:
    if torch.equal(a, b):
        return 'yes (bit-identical)'
    diff = (a - b).abs()
    return (f'no: {(diff > 0).float().mean().item():.1%} of outputs differ, '
            f'max |diff| {diff.max().item():.2e} '
            f'({diff.max().item() / b.abs().max().item():.1e} of max |out|)')


def peer_rows(args):
    """One row per T: times, their ratio, peaks, agreement."""
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g)
    x = x.to(device)
    rows = []
    for T in args.timesteps:
        ours, sj_run, _ = both_ways(args, T, device)
        with torch.no_grad():
            same = agreement(sj_run(x), ours(x))
            t_ours, t_sj, ratio, lo, hi = paired(
                lambda: ours(x), lambda: sj_run(x), args.repeats, device,
                warmup=1 if device.type == 'cpu' else 3)
            if device.type == 'cuda':
                peaks = (cuda_peak(lambda: ours(x)),
                         cuda_peak(lambda: sj_run(x)))
        ours = sj_run = None  # free before the next T
        if device.type == 'cuda':
            torch.cuda.empty_cache()
        else:
            peaks = tuple(run_child(case, args, args.batch, T)['work']
                          for case in PEER_CASES)
        row = [T, f'{t_ours:.1f}', f'{t_sj:.1f}', f'{ratio:.2f}',
               f'{lo:.2f} - {hi:.2f}', f'{peaks[0] / 2**20:.1f}',
               f'{peaks[1] / 2**20:.1f}', same]
        rows.append(row)
        print('| ' + ' | '.join(map(str, row)) + ' |', flush=True)
    return rows


COLUMNS = ['T', 'ours (ms)', 'SpikingJelly (ms)',
           'SpikingJelly / ours, median', 'min - max', 'ours peak (MiB)',
           'SpikingJelly peak (MiB)', 'outputs equal']


def peer_main(args):
    """The comparison on ``args.device``; rows into RESULTS.md."""
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('error: --device cuda: no CUDA GPU visible to torch')
    import_spikingjelly()
    env = environment(device)
    setting = (f'QResNet-18 width {args.width}, {args.bits}-bit, '
               f'{args.size} px, batch {args.batch}, unsigned IF')
    print(f"{setting}, {env['device']}, median of {args.repeats} paired "
          'rounds')
    print('\n| ' + ' | '.join(COLUMNS) + ' |')
    print('|' + '---|' * len(COLUMNS))
    rows = peer_rows(args)
    if args.record:
        memory = ('CUDA allocator peak above the model and input, after '
                  'warm-up calls' if device.type == 'cuda' else
                  'peak resident memory above the loaded model and input, '
                  'a fresh process per case')
        record('snn_peer', env, setting, COLUMNS, rows,
               [f'Median of {args.repeats} paired rounds '
                f"({'CUDA events' if device.type == 'cuda' else 'wall clock'}"
                f'); peak = {memory}. Ours: the default pass plan of the '
                'device. SpikingJelly 2.0: IFNode (step_mode=m, '
                'v_reset=None, V0 = theta/2 via set_reset_value) times '
                'theta, stateless layers in SeqToANNContainer, input '
                'repeated T times.'], md_path=args.results)
    return rows
