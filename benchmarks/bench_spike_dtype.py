"""Spike-reading layers in low precision (``spike_dtype``): time and cost.

The network of ``bench_snn.py`` (QResNet-18, ``--bits`` QuantReLUs), its
weights quantized to ``--weight-bits`` (uniform) so that int8 is exact.

1. Time, per T and spike dtype: wall(SNN) / (T x wall(QANN float32)),
   measured in paired rounds (``timing.paired``), and, for bfloat16 /
   float16, against T passes of the QANN under autocast to the same dtype.
   There is no int8 QANN in this project, so int8 has no same-precision
   QANN column. Beside it, what the precision costs: the largest output
   change against the float32 SNN (relative to the largest output) and the
   share of spike counts (per neuron, image and call site) that changed.
   A dtype without a fast path on this device (bfloat16 / float16 on a CPU
   without AVX512-BF16 / AMX) runs at ``--slow-batch`` with
   ``--slow-repeats`` rounds, or the run would take many minutes.
2. Per layer at T = ``--layers``: milliseconds of each spike-reading conv
   in float32 and in each dtype, and the density of its input spikes per
   step (nonzero share): which layers dominate, and how sparse their
   inputs are for an event-driven conv.

    python benchmarks/bench_spike_dtype.py [--dtypes int8 bfloat16]
        [--timesteps 3 7 15] [--batch 32] [--layers 7] [--threads 2]

Tables go to the terminal and to benchmarks/RESULTS.md (``--results``).
"""
import argparse
import collections
import os
import sys
from dataclasses import replace

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_net import build  # noqa: E402
from core_import import import_core  # noqa: E402
from results import add_results_arg, environment, record  # noqa: E402
from timing import paired, wall_ms  # noqa: E402

FLOAT_DTYPES = ('bfloat16', 'float16')


def add_net_args(p):
    """The network's options (:func:`make_net`), shared with
    ``bench_sparse_spikes.py``."""
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=32)
    p.add_argument('--width', type=int, default=32)
    p.add_argument('--bits', type=int, default=3)
    p.add_argument('--weight-bits', type=int, default=4,
                   help='uniform weight bits (0: float weights)')


def make_net(args):
    """bench_snn.py's network with quantized weights, baked once: the
    QANN does not re-quantize its weights at every pass of the timing."""
    from fastsnn_mm.quantization import quantize_model
    net = build(args.width, args.bits)
    if args.weight_bits:
        quantize_model(net, args.bits, weight=dict(
            type='uniform', bits=args.weight_bits,
            first_last_bits=args.weight_bits))
        with torch.no_grad():
            for m in net.modules():
                if hasattr(m, 'quantized_weight'):
                    m.weight.copy_(m.quantized_weight())
                    m.weight_quantizer = torch.nn.Identity()
    return net.eval()


def spike_counts(snn, x, T):
    """Per neuron call: net spike count per image and position, from one
    run with all T steps in one pass (so each call's output is [T*B, ...])."""
    from fastsnn_mm.spiking import IFNeuron
    counts = []

    def hook(neuron, args, out):
        steps = out.reshape(T, x.shape[0], *out.shape[1:])
        counts.append(torch.round(steps.sum(0) / neuron.theta))
    hooks = [m.register_forward_hook(hook) for m in snn.modules()
             if isinstance(m, IFNeuron)]
    before = snn.settings
    try:
        snn.settings = replace(before, time_chunk=T)
        out = snn(x)
    finally:
        snn.settings = before
        for h in hooks:
            h.remove()
    return out, counts


def fidelity(ref, low):
    """(largest output change / largest output, share of counts changed)."""
    (out_r, counts_r), (out_l, counts_l) = ref, low
    diff = float((out_l - out_r).abs().max() / out_r.abs().max())
    changed = sum(int((a != b).sum()) for a, b in zip(counts_r, counts_l))
    total = sum(a.numel() for a in counts_r)
    return diff, changed / total


def variants(args):
    """(spike dtype, BN folded) of each row: the float32 SNN first."""
    rows = [('float32', False)] + [(d, False) for d in args.dtypes]
    return rows + [(d, True) for d in args.fold_bn]


def peer_ratio(args, T, x, qann_T):
    """SpikingJelly's multi-step run of the same network (unsigned IF,
    float32; ``peer_spikingjelly.py``) over T x QANN float32, paired."""
    from peer_spikingjelly import run_spikingjelly, spikingjelly_network

    from fastsnn_mm import convert_to_snn
    theirs = spikingjelly_network(
        convert_to_snn(args.net, timesteps=T, neuron='unsigned').module)
    return paired(qann_T, lambda: run_spikingjelly(theirs, x, T),
                  args.repeats, 'cpu')[2]


def time_rows(args, net):
    from fastsnn_mm import convert_to_snn
    from fastsnn_mm.spiking.low_precision import slow_path_reason
    rows = []
    print('\n| ' + ' | '.join(TIME_COLUMNS) + ' |')
    print('|' + '---|' * len(TIME_COLUMNS))
    for T in args.timesteps:
        peer = None
        for dtype, fold_bn in variants(args):
            slow = dtype in FLOAT_DTYPES and slow_path_reason('cpu', dtype)
            batch = args.slow_batch if slow else args.batch
            repeats = args.slow_repeats if slow else args.repeats
            x = torch.randn(batch, 3, args.size, args.size,
                            generator=torch.Generator().manual_seed(1))
            snn = convert_to_snn(net, timesteps=T, fold_bn=fold_bn,
                                 spike_dtype=None if dtype == 'float32'
                                 else dtype)
            ref = convert_to_snn(net, timesteps=T)

            def qann_T(autocast='float32'):
                with torch.autocast('cpu', dtype=getattr(torch, autocast),
                                    enabled=autocast != 'float32'):
                    for _ in range(T):
                        net(x)

            def run_snn():
                snn(x)
            tq, ts, ratio, lo, hi = paired(qann_T, run_snn, repeats, 'cpu')
            same = '-'
            if dtype in FLOAT_DTYPES:
                same = paired(lambda: qann_T(dtype), run_snn, repeats,
                              'cpu')[2]
                same = f'{same:.2f}'
            if args.peer and peer is None and not slow:
                peer = peer_ratio(args, T, x, qann_T)
            diff, changed = fidelity(spike_counts(ref, x, T),
                                     spike_counts(snn, x, T))
            label = dtype + (' + BN folded' if fold_bn else '')
            row = [T, label, batch, f'{tq:.0f}', f'{ts:.0f}', f'{ratio:.2f}',
                   f'{lo:.2f} - {hi:.2f}', same,
                   f'{ratio / peer:.2f}' if peer and not slow else '-',
                   f'{diff:.1e}', f'{changed:.3%}']
            rows.append(row)
            print('| ' + ' | '.join(map(str, row)) + ' |', flush=True)
    return rows


TIME_COLUMNS = [
    'T', 'spike dtype', 'batch', 'T x QANN float32 (ms)', 'SNN (ms)',
    'SNN / (T x QANN float32)', 'min - max', 'SNN / (T x QANN same dtype)',
    'SNN / SpikingJelly', 'output change', 'counts changed']


def layer_rows(args, net):
    """Per spike-reading conv: ms per run in each dtype and input density."""
    from fastsnn_mm import convert_to_snn
    from fastsnn_mm.spiking.low_precision import SpikeInput, slow_path_reason
    from fastsnn_mm.utils.modules import forward_hooks
    T = args.layers
    dtypes = ['float32'] + [d for d in args.dtypes
                            if d not in FLOAT_DTYPES
                            or not slow_path_reason('cpu', d)]
    x = torch.randn(args.batch, 3, args.size, args.size,
                    generator=torch.Generator().manual_seed(1))
    spent = collections.defaultdict(float)  # (dtype, layer) -> ms
    density, total, reads = {}, collections.defaultdict(float), {}
    for dtype in dtypes:
        snn = convert_to_snn(net, timesteps=T, spike_dtype=None
                             if dtype == 'float32' else dtype)
        names = {m: n.replace('module.', '') for n, m in
                 snn.named_modules() if isinstance(m, torch.nn.Conv2d)}
        snn(x)  # warm up; the first call finds the spike-reading layers
        reads.update({names[m]: m.runs_in for m in names
                      if isinstance(m, SpikeInput) and m.runs_in})

        def start(module):
            def pre(mod, inputs):
                if dtype == 'float32':  # nonzero share of the input
                    density[names[mod]] = float(
                        (inputs[0] != 0).float().mean())
                mod._bench_t0 = wall_ms()
            return pre

        def stop(module):
            def post(mod, inputs, out):
                spent[(dtype, names[mod])] += wall_ms() - mod._bench_t0
            return post
        with forward_hooks(names, start, pre=True), \
                forward_hooks(names, stop):
            for _ in range(args.layer_rounds):
                snn(x)
        # the whole run without hooks: a hook on a conv may keep its
        # output, so BN then runs on a copy instead of in place
        for _ in range(args.layer_rounds):
            t0 = wall_ms()
            snn(x)
            total[dtype] += wall_ms() - t0
    r = args.layer_rounds
    print(f'\nPer conv at T={T}, batch {args.batch} (ms per SNN run, mean '
          f'of {r}; density: nonzero share of its input spikes per step):')
    head = ['conv', 'input density'] + [f'{d} (ms)' for d in dtypes] + \
        [f'{d} / float32' for d in dtypes[1:]] + ['share of float32 SNN']
    print('| ' + ' | '.join(head) + ' |')
    print('|' + '---|' * len(head))
    rows = []
    for name in dict.fromkeys(n for _, n in spent):
        if name not in reads:
            continue  # reads the image: float32 in every variant
        ms = [spent[(d, name)] / r for d in dtypes]
        row = [name, f'{density.get(name, float("nan")):.3f}'] + \
            [f'{m:.1f}' for m in ms] + \
            [f'{m / ms[0]:.2f}' for m in ms[1:]] + \
            [f'{ms[0] / (total["float32"] / r):.1%}']
        rows.append(row)
        print('| ' + ' | '.join(row) + ' |', flush=True)
    convs = [sum(spent[(d, n)] for n in reads) / r for d in dtypes]
    row = ['all spike-reading convs', '-'] + [f'{c:.1f}' for c in convs] + \
        [f'{c / convs[0]:.2f}' for c in convs[1:]] + \
        [f'{convs[0] / (total["float32"] / r):.1%}']
    rows.append(row)
    print('| ' + ' | '.join(row) + ' |')
    whole = ['whole SNN run', '-'] + [f'{total[d] / r:.1f}' for d in dtypes] \
        + [f'{total[d] / total["float32"]:.2f}' for d in dtypes[1:]] + ['-']
    rows.append(whole)
    print('| ' + ' | '.join(whole) + ' |')
    # what is not a spike-reading conv: neurons, BN, adds, layout copies
    outside = [total[d] / r - c for c, d in zip(convs, dtypes)]
    rest = ['outside them (ms)', '-'] + [f'{o:.1f}' for o in outside] + \
        [f'{o / outside[0]:.2f}' for o in outside[1:]] + ['-']
    share = ['share of the run outside them', '-'] + \
        [f'{o / (total[d] / r):.1%}' for o, d in zip(outside, dtypes)] + \
        ['-'] * (len(dtypes) - 1) + ['-']
    for row in (rest, share):
        rows.append(row)
        print('| ' + ' | '.join(row) + ' |')
    return head, rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--dtypes', nargs='+', default=['int8', 'bfloat16'],
                   choices=['bfloat16', 'float16', 'int8', 'int8-rounded'])
    p.add_argument('--fold-bn', nargs='*', default=[], metavar='DTYPE',
                   choices=['float32', 'bfloat16', 'float16', 'int8',
                            'int8-rounded'],
                   help='also run these with BN folded into the convs')
    p.add_argument('--peer', action='store_true',
                   help='time SpikingJelly on the same network too')
    p.add_argument('--timesteps', type=int, nargs='+', default=[3, 7, 15])
    add_net_args(p)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--slow-batch', type=int, default=1,
                   help='batch for a dtype without a fast path here')
    p.add_argument('--slow-repeats', type=int, default=1)
    p.add_argument('--layers', type=int, default=7, metavar='T',
                   help='T of the per-layer table (0: none)')
    p.add_argument('--layer-rounds', type=int, default=2)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--malloc', choices=['keep-freed', 'glibc-default'],
                   default='keep-freed',
                   help="keep-freed: glibc reuses freed memory, as "
                   "tools/test.py sets it (fastsnn_mm.utils.allocator); "
                   "glibc-default: every large tensor faults its pages in "
                   "anew. Process-wide: QANN and SNN rows share it")
    add_results_arg(p)
    args = p.parse_args(argv)
    kind = import_core()
    from fastsnn_mm.utils.allocator import retain_freed_memory
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc == 'keep-freed' and not retain_freed_memory():
        args.malloc = 'glibc-default (no mallopt here)'
    env = dict(environment('cpu'), fastsnn_import=kind)
    net = args.net = make_net(args)
    setting = (f'QResNet-18 width {args.width}, {args.bits}-bit, weights '
               f'{args.weight_bits or "float"}-bit, {args.size} px, malloc '
               f'{args.malloc}')
    with torch.no_grad():
        rows = time_rows(args, net)
        layers = layer_rows(args, net) if args.layers else None
    if not args.record:
        return
    record('spike_dtype', env, f'{setting}: time', TIME_COLUMNS, rows,
           notes=NOTES, md_path=args.results)
    if layers:
        record('spike_dtype', env, f'{setting}: per conv at T={args.layers}'
               f', batch {args.batch}', layers[0], layers[1],
               notes=LAYER_NOTES, md_path=args.results)


NOTES = (
    '"SNN / SpikingJelly": this row\'s SNN time over SpikingJelly 2.0\'s '
    'multi-step run of the same weights (float32, unsigned IF: it has no '
    'signed rule; `peer_spikingjelly.py`), both against the same T x QANN '
    'passes. "output change": largest |SNN output - float32 SNN output| '
    'over the largest |float32 SNN output|; "counts changed": share of net '
    'spike counts (per neuron, image and position) that differ from the '
    'float32 SNN\'s. int8 is exact integer arithmetic with one float32 '
    'rescale, so what it changes is the float32 SNN\'s own rounding. A '
    'dtype with no fast path on this CPU (bfloat16 without AVX512-BF16 / '
    'AMX) runs a smaller batch, fewer rounds.',
)


LAYER_NOTES = (
    'Milliseconds per SNN run spent in each conv that reads spikes '
    '(forward hooks; the first layer reads the image and stays float32 in '
    'every variant). "whole SNN run": the same runs without hooks; '
    '"outside them": that minus the convs (neurons, BN, adds, the stem, '
    'the readout, layout copies, Python). An int8 conv reads the uint8 '
    'codes its neuron wrote beside the spikes and answers channels-last. '
    '"input density": nonzero share of the conv\'s input per step, '
    'averaged over its batch and steps.',
)


if __name__ == '__main__':
    main()
