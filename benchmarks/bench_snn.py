"""SNN cost against its QANN, measured side by side in one run.

1. Time: wall(SNN folded, T) / (T x wall(QANN)) on the same batch. Below 1.0
   means the SNN costs less than T QANN passes: the layers before the first
   neuron see the same input at every step and run once, and the neuron
   update is one fused pass per layer (the compiled kernel). Measured in
   pairs: each round times T QANN passes and one SNN pass back to back, so
   load from elsewhere on the machine hits both; the median of the per-round
   ratios is reported. --reference adds rows with the reference neuron loop
   (FASTSNN_IF_KERNEL=0) for comparison; --time-chunk adds rows that fold
   at most that many steps per pass; --fold-bn a row with BN folded;
   --fold-mib rows with another folded-tensor budget. Last come rows with
   glibc keeping freed memory for reuse (what tools/test.py sets), QANN and
   SNN alike: freshly mapped memory page-faults on first touch, and the
   SNN's larger folded tensors pay more for it.
2. Memory: peak memory of streaming-mode SNN inference / QANN inference, at
   T=15. Each case runs in a fresh process (big allocations are mmap'ed so
   freed memory leaves the resident set); the kernel's peak-RSS mark is
   reset just before the forward pass, so "working" memory is what the
   inference needed beyond the loaded model and input; "total" adds the
   model's parameters and buffers. "streaming" runs the batch in slices
   whose neuron state fits the runner's budget (the default);
   "streaming-whole-batch" keeps state for the whole batch at once.

On a GPU (``--device cuda``, or ``--plans`` on any device) the same
questions with CUDA tools, per pass plan (``bench_snn_plans.py``).
``--peer spikingjelly`` runs the same converted network as a SpikingJelly
multi-step network instead and compares the two (``peer_spikingjelly.py``).

Tables go to the terminal and to benchmarks/RESULTS.md (``--results``).

    python benchmarks/bench_snn.py [--batch 32] [--timesteps 3 7 15]
    python benchmarks/bench_snn.py --device cuda --width 64 --size 32 \
        --batch 128
    python benchmarks/bench_snn.py --device cuda --width 64 --size 224 \
        --batch 32
    python benchmarks/bench_snn.py --peer spikingjelly [--device cuda]
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_net import build, cpu_peak, model_bytes, plot_time, run_child  # noqa: E402
from bench_snn_plans import plans_main  # noqa: E402
from core_import import import_core  # noqa: E402
from peer_spikingjelly import PEER_CASES, peer_main  # noqa: E402
from peer_spikingjelly import memory_case as peer_memory_case  # noqa: E402
from results import add_results_arg, environment, record  # noqa: E402
from timing import paired, wall_ms  # noqa: E402

MEMORY_CASES = ('qann', 'streaming', 'streaming-whole-batch', 'folded',
                'folded-all-T')


def memory_case(args):
    """Child process: one inference; print the peak resident memory it
    needed above the idle process, plus the model's own bytes."""
    import_core()
    x = torch.randn(args.batch, 3, args.size, args.size)
    net = build(args.width, args.bits)
    if args.case != 'qann':
        from fastsnn_mm import convert_to_snn
        from fastsnn_mm.spiking import plan
        T = args.mem_timesteps
        mode = 'streaming' if args.case.startswith('streaming') else 'folded'
        if args.case == 'streaming-whole-batch':
            plan.STATE_BYTES = 2**62  # never slice
        chunk = T if args.case == 'folded-all-T' else None
        net = convert_to_snn(net, timesteps=T, mode=mode, copy=False,
                             time_chunk=chunk)
    with torch.no_grad():
        work = cpu_peak(lambda: net(x))
    # what the streaming neurons kept for the whole run of one slice: V
    # (float32) and, for the signed rule, the net count (int8 for T <= 127)
    state = 0
    if args.case.startswith('streaming'):
        from fastsnn_mm.spiking.sizing import input_shape_info
        with torch.no_grad():  # the plan's own figures (cached by the run)
            info = input_shape_info(net.module, net.module, x, T)
        largest = plan.slice_sizes(
            args.batch, plan.streaming_slice(info, args.batch))[0]
        state = info['state_bytes'] * largest
    print(json.dumps(dict(case=args.case, work=work, model=model_bytes(net),
                          state=state)))


def time_table(args, net, x):
    from fastsnn_mm.spiking import plan
    from fastsnn_mm.utils.allocator import retain_freed_memory
    # chunk None: the default plan (FOLD_BYTES); 0: all T steps at once
    variants = [dict(chunk=None), dict(chunk=0)] + \
        [dict(chunk=c) for c in args.time_chunk]
    variants += [dict(chunk=None, fold_mib=m) for m in args.fold_mib]
    if args.fold_bn:
        variants.append(dict(chunk=None, fold_bn=True))
    if args.reference:
        variants.append(dict(chunk=None, update='reference'))
    print('\n| T | allocator | time chunk | neuron update | T x QANN (ms) | '
          'SNN folded (ms) | SNN / (T x QANN), median | min - max |')
    print('|---|---|---|---|---|---|---|---|')
    default_mib = plan.FOLD_BYTES / 2**20
    rows = []
    with torch.no_grad():
        # glibc's own thresholds first: keeping freed memory cannot be undone
        for T in args.timesteps:
            for v in variants:
                rows += time_row(args, net, x, T, v, 'glibc default',
                                 default_mib)
        if args.layers:
            layer_table(net, x, args.layers, 'glibc default')
        if args.allocator and retain_freed_memory():
            for T in args.timesteps:
                for v in variants[:2]:  # the plan and all T at once
                    rows += time_row(args, net, x, T, v, 'keeps freed',
                                     default_mib)
            if args.layers:
                layer_table(net, x, args.layers, 'keeps freed')
    os.environ.pop('FASTSNN_IF_KERNEL', None)
    plan.FOLD_BYTES = int(default_mib * 2**20)
    return rows


def time_row(args, net, x, T, v, allocator, default_mib):
    """One variant of the SNN timed against T QANN passes; [] or [row]."""
    from fastsnn_mm import convert_to_snn
    from fastsnn_mm.spiking import plan
    chunk, update = v['chunk'], v.get('update', 'kernel')
    if chunk is not None and chunk >= T:
        return []
    os.environ['FASTSNN_IF_KERNEL'] = '1' if update == 'kernel' else '0'
    plan.FOLD_BYTES = int(v.get('fold_mib', default_mib) * 2**20)
    snn = convert_to_snn(net, timesteps=T,
                         time_chunk=T if chunk == 0 else chunk,
                         fold_bn=v.get('fold_bn', False))

    def qann_T():
        for _ in range(T):
            net(x)
    tq, ts, ratio, lo, hi = paired(qann_T, lambda: snn(x), args.repeats,
                                   x.device)
    label = {None: 'auto', 0: 'all T'}.get(chunk, chunk)
    if 'fold_mib' in v:
        label = f"auto, {v['fold_mib']:g} MiB"
    if v.get('fold_bn'):
        update += ' + BN folded'
    print(f"| {T} | {allocator} | {label} | {update} | {tq:.0f} | "
          f'{ts:.0f} | {ratio:.3f} | {lo:.2f} - {hi:.2f} |', flush=True)
    return [dict(T=T, variant=f'chunk {label}, {update}, {allocator}',
                 ratio=ratio, lo=lo, hi=hi, qann_ms=tq, snn_ms=ts)]


def layer_table(net, x, T, allocator, rounds=3):
    """Wall time per module kind and input shape: T QANN passes against one
    SNN run (default plan), summed over calls, mean of ``rounds``. Hooks
    read each module's input, so neurons do not write over it here."""
    import collections

    from fastsnn_mm import convert_to_snn
    from fastsnn_mm.utils.modules import forward_hooks
    snn = convert_to_snn(net, timesteps=T)
    kinds = ('Conv2d', 'BatchNorm2d', 'QuantReLU', 'SignedIFNeuron')
    spent = collections.defaultdict(float)
    tag_of = {m: tag for tag, model in (('qann', net), ('snn', snn.module))
              for m in model.modules() if type(m).__name__ in kinds}

    def start(module):
        def pre(mod, inputs):
            mod._bench_t0 = wall_ms()
        return pre

    def stop(module):
        tag = tag_of[module]
        kind = 'activation' if type(module).__name__ in kinds[2:] \
            else type(module).__name__

        def post(mod, inputs, out):
            spent[(kind, tuple(inputs[0].shape[1:]), tag)] += \
                wall_ms() - mod._bench_t0
        return post

    with forward_hooks(tag_of, start, pre=True), \
            forward_hooks(tag_of, stop):
        for r in range(rounds + 1):
            if r == 1:
                spent.clear()  # the first round warms up
            for _ in range(T):
                net(x)
            snn(x)
    print(f'\nPer module at T={T}, {allocator} allocator (ms per run; '
          'activation = QuantReLU in the QANN, the IF neuron in the SNN):')
    print('| module | input (C, H, W) | T x QANN | SNN | SNN / (T x QANN) |')
    print('|---|---|---|---|---|')
    for kind, shape in dict.fromkeys(k[:2] for k in spent):
        q = spent[(kind, shape, 'qann')] / rounds
        n = spent[(kind, shape, 'snn')] / rounds
        print(f'| {kind} | {shape} | {q:.1f} | {n:.1f} | '
              f'{n / q if q else float("nan"):.2f} |', flush=True)


def memory_table(args):
    print(f'\nPeak memory of one inference at T={args.mem_timesteps} '
          '(fresh process each; working = peak resident memory above the '
          'idle process with model and input loaded; state = membrane '
          'potentials and spike counts the streaming neurons keep):')
    print('| batch | case | working (MiB) | of which state (MiB) | '
          'model (MiB) | total (MiB) | total / QANN | working / QANN |')
    print('|---|---|---|---|---|---|---|---|')
    rows = []
    for batch in args.mem_batch or [args.batch]:
        peaks = {c: run_child(c, args, batch, args.mem_timesteps)
                 for c in MEMORY_CASES}
        q = peaks['qann']
        for c, v in peaks.items():
            tot, qtot = v['work'] + v['model'], q['work'] + q['model']
            state = f"{v['state'] / 2**20:.1f}" if v['state'] else '-'
            row = [batch, c, f"{v['work'] / 2**20:.1f}", state,
                   f"{v['model'] / 2**20:.1f}", f'{tot / 2**20:.1f}',
                   f'{tot / qtot:.2f}', f"{v['work'] / q['work']:.2f}"]
            rows.append(row)
            print('| ' + ' | '.join(map(str, row)) + ' |', flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--device', default='cpu',
                   help='cpu (default) or cuda: on cuda, CUDA-event timing '
                   'and allocator peaks (the CPU-only options are ignored)')
    p.add_argument('--peer', choices=['spikingjelly'],
                   help='run the same converted network as a SpikingJelly '
                   'multi-step network too: time, peak memory and output '
                   'agreement of both, per T (--timesteps)')
    p.add_argument('--plans', action='store_true',
                   help='the GPU run\'s table on this device: default plan, '
                   'all T folded and streaming against T QANN passes')
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=32)
    p.add_argument('--width', type=int, default=32)
    p.add_argument('--bits', type=int, default=3)
    p.add_argument('--timesteps', type=int, nargs='+', default=[3, 7, 15])
    p.add_argument('--mem-timesteps', type=int, default=15)
    p.add_argument('--mem-batch', type=int, nargs='*', default=[],
                   help='batch sizes of the memory table (default --batch)')
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--time-chunk', type=int, nargs='*', default=[],
                   help='also time folded runs presenting this many steps '
                   'per pass')
    p.add_argument('--fold-mib', type=float, nargs='*', default=[],
                   help='also time the automatic plan with this budget per '
                   'folded activation (MiB) instead of plan.FOLD_BYTES')
    p.add_argument('--plot', help='also draw the time table as a PNG here')
    p.add_argument('--only', choices=['time', 'memory'],
                   help='run one of the two parts')
    p.add_argument('--fold-bn', action='store_true',
                   help='also time the SNN with BN folded into the convs')
    p.add_argument('--allocator', action=argparse.BooleanOptionalAction,
                   default=True,
                   help='also time with glibc keeping freed memory '
                   '(fastsnn_mm.utils.allocator), after the default rows')
    p.add_argument('--layers', type=int, metavar='T',
                   help='also time each module kind at this T, per '
                   'allocator setting')
    p.add_argument('--reference', action='store_true',
                   help='also time the reference (uncompiled) neuron loop')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--child', choices=MEMORY_CASES + PEER_CASES)
    add_results_arg(p)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child in PEER_CASES:
        args.case = args.child
        return peer_memory_case(args)
    if args.child:
        args.case = args.child
        return memory_case(args)
    if args.peer:
        return peer_main(args)
    if torch.device(args.device).type == 'cuda' or args.plans:
        return plans_main(args)
    if torch.device(args.device).type != 'cpu':
        p.error(f'--device {args.device}: cpu or cuda')

    x = torch.randn(args.batch, 3, args.size, args.size)
    net = build(args.width, args.bits)
    env = environment('cpu')
    setting = (f'QResNet-18 width {args.width}, {args.bits}-bit, '
               f'{args.size} px, batch {args.batch}')
    print(f'{setting}, {torch.get_num_threads()} threads, median of '
          f'{args.repeats}')
    if args.only != 'memory':
        rows = time_table(args, net, x)
        if args.plot:
            plot_time(rows, args.plot)
        if args.record:
            record('snn_time', env, setting,
                   ['T', 'variant', 'T x QANN (ms)', 'SNN folded (ms)',
                    'SNN / (T x QANN), median', 'min - max'],
                   [[r['T'], r['variant'], f"{r['qann_ms']:.0f}",
                     f"{r['snn_ms']:.0f}", f"{r['ratio']:.3f}",
                     f"{r['lo']:.2f} - {r['hi']:.2f}"] for r in rows],
                   [f'Median of {args.repeats} paired rounds (wall clock).'],
                   plot=args.plot, md_path=args.results)
    if args.only != 'time':
        rows = memory_table(args)
        if args.record:
            record('snn_memory', env,
                   f'QResNet-18 width {args.width}, {args.bits}-bit, '
                   f'{args.size} px, T={args.mem_timesteps}',
                   ['batch', 'case', 'working (MiB)', 'of which state (MiB)',
                    'model (MiB)', 'total (MiB)', 'total / QANN',
                    'working / QANN'], rows,
                   ['Peak resident memory, a fresh process per case.'],
                   md_path=args.results)


if __name__ == '__main__':
    main()
