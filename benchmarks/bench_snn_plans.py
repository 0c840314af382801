"""The GPU run's SNN table: each pass plan timed against T QANN passes,
and on a GPU its peak memory (``bench_snn.py --device cuda``, or
``--plans`` on any device).

QANN and SNN are timed with CUDA events in paired rounds (the default plan,
all T steps folded in one pass, and streaming); peak working memory comes
from ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
(QANN, the default plan, all T folded, streaming) at T = --mem-timesteps.
cuDNN and TF32 stay at torch's defaults, as a user's run has them.
"""
import torch
from bench_net import build, cuda_peak, plot_time
from results import environment, record
from timing import paired

#: GPU variants: (label, convert_to_snn keywords given T)
CUDA_PLANS = (
    ('default plan', lambda T: dict(mode='folded')),
    ('all T folded', lambda T: dict(mode='folded', time_chunk=T)),
    ('streaming', lambda T: dict(mode='streaming')),
)


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
                tq, ts, ratio, lo, hi = paired(
                    qann_T, lambda: snn(x), args.repeats, x.device,
                    warmup=3)
                row = [T, label, f'{tq:.2f}', f'{ts:.2f}', f'{ratio:.3f}',
                       f'{lo:.2f} - {hi:.2f}']
                rows.append(row)
                plot_rows.append(dict(T=T, variant=label, ratio=ratio, lo=lo,
                                      hi=hi))
                print('| ' + ' | '.join(map(str, row)) + ' |', flush=True)
                snn = None  # freed before the next plan
                if x.is_cuda:
                    torch.cuda.empty_cache()
    return rows, plot_rows


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
                snn = None  # freed before the next plan
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
