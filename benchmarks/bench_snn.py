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

On a GPU (``--device cuda``) the same questions with CUDA tools: QANN and
SNN timed with CUDA events in paired rounds (the default plan, all T steps
folded in one pass, and streaming), and peak working memory from
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
(QANN, the default plan, all T folded, streaming) at T=15. cuDNN and TF32
stay at torch's defaults, as a user's run has them.

Tables go to the terminal and to benchmarks/RESULTS.md (``--results``).

    python benchmarks/bench_snn.py [--batch 32] [--timesteps 3 7 15]
    python benchmarks/bench_snn.py --device cuda --width 64 --size 32 --batch 128
    python benchmarks/bench_snn.py --device cuda --width 64 --size 224 --batch 32
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from core_import import import_core  # noqa: E402
from results import add_results_arg, environment, record  # noqa: E402
from timing import Timer  # noqa: E402


MEMORY_CASES = ('qann', 'streaming', 'streaming-whole-batch', 'folded',
                'folded-all-T')


def build(width, bits, seed=0):
    import_core()
    from fastsnn_mm.models.backbones import QResNet
    torch.manual_seed(seed)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = QResNet(depth=18, base_channels=width,
                                    act_cfg=dict(type='QuantReLU', bits=bits))
            self.fc = nn.Linear(width * 8, 10)

        def forward(self, x):
            return self.fc(self.backbone(x)[-1].mean((2, 3)))
    net = Net().eval()
    for m in net.modules():  # give BN and alpha realistic, non-trivial values
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2)
            m.running_mean.uniform_(-0.2, 0.2)
        if hasattr(m, 'alpha'):
            m.alpha.data.fill_(1.0)
    return net


def _wall(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired(base, other, repeats):
    """Median wall times of ``base`` and ``other`` and the median of their
    per-round ratio other/base, rounds alternating which goes first."""
    base(), other()  # warm-up
    tb, to, ratios = [], [], []
    for r in range(repeats):
        if r % 2:
            o, b = _wall(other), _wall(base)
        else:
            b, o = _wall(base), _wall(other)
        tb.append(b), to.append(o), ratios.append(o / b)
    return (statistics.median(tb), statistics.median(to),
            statistics.median(ratios), min(ratios), max(ratios))


def rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss_bytes():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('no VmHWM in /proc/self/status')


def memory_case(args):
    """Child process: one inference; print the peak resident memory it
    needed above the idle process, plus the model's own bytes."""
    import gc

    import_core()
    x = torch.randn(args.batch, 3, args.size, args.size)
    net = build(args.width, args.bits)
    if args.case != 'qann':
        from fastsnn_mm import convert_to_snn
        from fastsnn_mm.spiking import runner
        T = args.mem_timesteps
        mode = 'streaming' if args.case.startswith('streaming') else 'folded'
        if args.case == 'streaming-whole-batch':
            runner.STATE_BYTES = 2**62  # never slice
        chunk = T if args.case == 'folded-all-T' else None
        net = convert_to_snn(net, timesteps=T, mode=mode, inplace=True,
                             time_chunk=chunk)
    model_bytes = sum(t.numel() * t.element_size() for t in
                      list(net.parameters()) + list(net.buffers()))
    gc.collect()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset the peak-RSS mark to the current RSS
    base = rss_bytes()
    with torch.no_grad():
        net(x)
    work = peak_rss_bytes() - base
    # what the streaming neurons kept for the whole run of one slice: V
    # (float32) and, for the signed rule, the net count (int8 for T <= 127)
    state = 0
    if args.case.startswith('streaming'):
        with torch.no_grad():  # the plan's own figures (cached by the run)
            info = runner.input_shape_info(net.module, net.module, x, T)
        largest = runner.slice_sizes(
            args.batch, runner.streaming_slice(info, args.batch))[0]
        state = info['state_bytes'] * largest
    print(json.dumps(dict(case=args.case, work=work, model=model_bytes,
                          state=state)))


def run_child(case, args, batch):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536',
               MALLOC_TRIM_THRESHOLD_='0')
    cmd = [sys.executable, __file__, '--child', case, '--batch', str(batch),
           '--width', str(args.width), '--bits', str(args.bits),
           '--size', str(args.size), '--mem-timesteps', str(args.mem_timesteps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def time_table(args, net, x):
    from fastsnn_mm.spiking import runner
    from fastsnn_mm.utils.allocator import retain_freed_memory
    # chunk None: the default plan (FOLD_BYTES); 0: all T steps at once
    variants = [dict(chunk=None), dict(chunk=0)] + \
        [dict(chunk=c) for c in args.time_chunk]
    variants += [dict(chunk=None, fold_mib=m) for m in args.fold_mib]
    if args.fold_bn:
        variants.append(dict(chunk=None, fold_bn=True))
    if args.reference:
        variants.append(dict(chunk=None, update='reference'))
    print(f'\n| T | allocator | time chunk | neuron update | T x QANN (ms) | '
          'SNN folded (ms) | SNN / (T x QANN), median | min - max |')
    print('|---|---|---|---|---|---|---|---|')
    default_mib = runner.FOLD_BYTES / 2**20
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
    runner.FOLD_BYTES = int(default_mib * 2**20)
    return rows


def time_row(args, net, x, T, v, allocator, default_mib):
    """One variant of the SNN timed against T QANN passes; [] or [row]."""
    from fastsnn_mm import convert_to_snn
    from fastsnn_mm.spiking import runner
    chunk, update = v['chunk'], v.get('update', 'kernel')
    if chunk is not None and chunk >= T:
        return []
    os.environ['FASTSNN_IF_KERNEL'] = '1' if update == 'kernel' else '0'
    runner.FOLD_BYTES = int(v.get('fold_mib', default_mib) * 2**20)
    snn = convert_to_snn(net, timesteps=T,
                         time_chunk=T if chunk == 0 else chunk,
                         fold_bn=v.get('fold_bn', False))

    def qann_T():
        for _ in range(T):
            net(x)
    tq, ts, ratio, lo, hi = paired(qann_T, lambda: snn(x), args.repeats)
    label = {None: 'auto', 0: 'all T'}.get(chunk, chunk)
    if 'fold_mib' in v:
        label = f"auto, {v['fold_mib']:g} MiB"
    if v.get('fold_bn'):
        update += ' + BN folded'
    print(f"| {T} | {allocator} | {label} | {update} | {tq * 1e3:.0f} | "
          f'{ts * 1e3:.0f} | {ratio:.3f} | {lo:.2f} - {hi:.2f} |', flush=True)
    return [dict(T=T, variant=f'chunk {label}, {update}, {allocator}',
                 ratio=ratio, lo=lo, hi=hi, qann_ms=tq * 1e3,
                 snn_ms=ts * 1e3)]


def layer_table(net, x, T, allocator, rounds=3):
    """Wall time per module kind and input shape: T QANN passes against one
    SNN run (default plan), summed over calls, mean of ``rounds``. Hooks
    read each module's input, so neurons do not write over it here."""
    import collections
    from fastsnn_mm import convert_to_snn
    snn = convert_to_snn(net, timesteps=T)
    kinds = ('Conv2d', 'BatchNorm2d', 'QuantReLU', 'SignedIFNeuron')
    spent = collections.defaultdict(float)
    handles = []
    for tag, model in (('qann', net), ('snn', snn.module)):
        for m in model.modules():
            if type(m).__name__ not in kinds:
                continue

            def pre(mod, inputs):
                mod._bench_t0 = time.perf_counter()

            def post(mod, inputs, out, tag=tag):
                kind = 'activation' if type(mod).__name__ in kinds[2:] \
                    else type(mod).__name__
                spent[(kind, tuple(inputs[0].shape[1:]), tag)] += \
                    time.perf_counter() - mod._bench_t0
            handles += [m.register_forward_pre_hook(pre),
                        m.register_forward_hook(post)]
    for r in range(rounds + 1):
        if r == 1:
            spent.clear()  # the first round warms up
        for _ in range(T):
            net(x)
        snn(x)
    for h in handles:
        h.remove()
    print(f'\nPer module at T={T}, {allocator} allocator (ms per run; '
          'activation = QuantReLU in the QANN, the IF neuron in the SNN):')
    print('| module | input (C, H, W) | T x QANN | SNN | SNN / (T x QANN) |')
    print('|---|---|---|---|---|')
    for kind, shape in dict.fromkeys(k[:2] for k in spent):
        q = spent[(kind, shape, 'qann')] / rounds * 1e3
        n = spent[(kind, shape, 'snn')] / rounds * 1e3
        print(f'| {kind} | {shape} | {q:.1f} | {n:.1f} | '
              f'{n / q if q else float("nan"):.2f} |', flush=True)


def plot_time(rows, path):
    """SNN / (T x QANN) against T, one line per variant, min-max bars."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for variant in dict.fromkeys(r['variant'] for r in rows):
        pts = [r for r in rows if r['variant'] == variant]
        ax.errorbar([r['T'] for r in pts], [r['ratio'] for r in pts],
                    yerr=[[r['ratio'] - r['lo'] for r in pts],
                          [r['hi'] - r['ratio'] for r in pts]],
                    marker='o', capsize=3, label=variant)
    ax.axhline(1.0, color='grey', ls='--', lw=1)
    ax.set_xlabel('time steps T')
    ax.set_ylabel('wall(SNN folded) / (T x wall(QANN))')
    ax.set_xticks(sorted({r['T'] for r in rows}))
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f'\nplot: {path}')


def memory_table(args):
    print(f'\nPeak memory of one inference at T={args.mem_timesteps} '
          '(fresh process each; working = peak resident memory above the '
          'idle process with model and input loaded; state = membrane '
          'potentials and spike counts the streaming neurons keep):')
    print('| batch | case | working (MiB) | of which state (MiB) | model (MiB) '
          '| total (MiB) | total / QANN | working / QANN |')
    print('|---|---|---|---|---|---|---|---|')
    rows = []
    for batch in args.mem_batch or [args.batch]:
        peaks = {c: run_child(c, args, batch) for c in MEMORY_CASES}
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


#: GPU variants: (label, convert_to_snn keywords given T)
CUDA_PLANS = (
    ('default plan', lambda T: dict(mode='folded')),
    ('all T folded', lambda T: dict(mode='folded', time_chunk=T)),
    ('streaming', lambda T: dict(mode='streaming')),
)


def paired_timed(base, other, repeats, device, warmup=3):
    """As :func:`paired`, in milliseconds, CUDA events on a GPU."""
    timer = Timer(device)
    for _ in range(warmup):
        base(), other()
    tb, to, ratios = [], [], []
    for r in range(repeats):
        if r % 2:
            o, b = timer(other), timer(base)
        else:
            b, o = timer(base), timer(other)
        tb.append(b), to.append(o), ratios.append(o / b)
    return (statistics.median(tb), statistics.median(to),
            statistics.median(ratios), min(ratios), max(ratios))


def plans_time_table(args, net, x):
    """wall(SNN) / (T x wall(QANN)) per T and plan (CUDA events on a
    GPU)."""
    from fastsnn_mm import convert_to_snn
    print('\n| T | plan | T x QANN (ms) | SNN (ms) | SNN / (T x QANN), '
          'median | min - max |')
    print('|---|---|---|---|---|---|')
    rows, plot_rows = [], []
    with torch.no_grad():
        for T in args.timesteps:
            for label, kwargs in CUDA_PLANS:
                snn = convert_to_snn(net, timesteps=T, **kwargs(T))

                def qann_T(T=T):
                    for _ in range(T):
                        net(x)
                tq, ts, ratio, lo, hi = paired_timed(
                    qann_T, lambda: snn(x), args.repeats, x.device)
                row = [T, label, f'{tq:.2f}', f'{ts:.2f}', f'{ratio:.3f}',
                       f'{lo:.2f} - {hi:.2f}']
                rows.append(row)
                plot_rows.append(dict(T=T, variant=label, ratio=ratio, lo=lo,
                                      hi=hi))
                print('| ' + ' | '.join(map(str, row)) + ' |', flush=True)
                del snn
                if x.is_cuda:
                    torch.cuda.empty_cache()
    return rows, plot_rows


def cuda_peak(fn):
    """Peak bytes allocated by ``fn()`` above what was allocated before."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def cuda_memory_table(args, net, x):
    """Peak working memory at T = --mem-timesteps: QANN and SNN plans."""
    from fastsnn_mm import convert_to_snn
    T = args.mem_timesteps
    print(f'\nPeak working memory of one inference at T={T} (CUDA '
          'allocator peak above the loaded model and input):')
    print('| case | working (MiB) | / QANN |')
    print('|---|---|---|')
    rows = []
    with torch.no_grad():
        net(x)  # warm-up (cuDNN workspaces, lazy inits)
        qann = cuda_peak(lambda: net(x))
        cases = [('QANN', None)] + list(CUDA_PLANS)
        for label, kwargs in cases:
            if kwargs is None:
                peak = qann
            else:
                snn = convert_to_snn(net, timesteps=T, **kwargs(T))
                snn(x)  # warm-up: sizing pass, cached plan
                peak = cuda_peak(lambda: snn(x))
                del snn
            torch.cuda.empty_cache()
            row = [label, f'{peak / 2**20:.1f}', f'{peak / qann:.2f}']
            rows.append(row)
            print('| ' + ' | '.join(row) + ' |', flush=True)
    return rows


def plans_main(args):
    """The GPU run (on any device with --plans): the plans timed against
    the QANN, and on a GPU their peak memory; recorded per shape."""
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('error: --device cuda: no CUDA GPU visible to torch')
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    net = build(args.width, args.bits).to(device)
    env = environment(device)
    setting = (f'QResNet-18 width {args.width}, {args.bits}-bit, '
               f'{args.size} px, batch {args.batch}')
    if device.type != 'cuda':  # beside, not over, the CPU run's own rows
        setting += ', plans'
    print(f"{setting}, {env['device']}, median of {args.repeats} paired "
          'rounds')
    if args.only != 'memory':
        rows, plot_rows = plans_time_table(args, net, x)
        png = args.plot
        if png:
            plot_time(plot_rows, png)
        if args.record:
            record('snn_time', env, setting,
                   ['T', 'plan', 'T x QANN (ms)', 'SNN (ms)',
                    'SNN / (T x QANN), median', 'min - max'], rows,
                   [f'Median of {args.repeats} paired rounds, ' +
                    ('CUDA events; cuDNN and TF32 at torch defaults; the '
                     'QANN\'s QuantReLU runs its fused kernel.'
                     if device.type == 'cuda' else 'wall clock.')], plot=png,
                   md_path=args.results)
    if args.only != 'time' and device.type != 'cuda':
        print('\n(memory with --plans is measured on a GPU only; on the CPU '
              'run without --plans for the fresh-process memory table)')
    elif args.only != 'time':
        rows = cuda_memory_table(args, net, x)
        if args.record:
            record('snn_memory', env, f'{setting}, T={args.mem_timesteps}',
                   ['case', 'working (MiB)', 'working / QANN'], rows,
                   ['Working = torch.cuda.max_memory_allocated() above the '
                    'memory allocated before the call (model and input), '
                    'after a warm-up call.'], md_path=args.results)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--device', default='cpu',
                   help='cpu (default) or cuda: on cuda, CUDA-event timing '
                   'and allocator peaks (the CPU-only options are ignored)')
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
                   'folded activation (MiB) instead of runner.FOLD_BYTES')
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
    p.add_argument('--child', choices=MEMORY_CASES)
    add_results_arg(p)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        args.case = args.child
        return memory_case(args)
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
