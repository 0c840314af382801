"""The IF neuron's T-step update alone, against other ways of computing it.

On one [T, 8, 64, 40, 40] float32 tensor (a mid-network activation of a
detector; theta = 1), per T, milliseconds for:

* ours, signed / unsigned: the neuron module's forward under
  ``timestep_context`` with all T steps folded into the batch, as a
  converted network calls it (CPU: the compiled C kernel; CUDA: whatever
  the neuron dispatches to there), output spike x theta;
* the reference loop (``if_loop``, one vectorised step at a time; what a
  device without a kernel runs), signed / unsigned, times theta;
* an official-code-style loop, signed: a plain per-step loop with boolean
  masks and masked assignments, no fusion, written here in the manner of
  the paper's released code (not copied from it);
* ``torch.compile`` of the reference loop, signed (bit-identity checked);
* SpikingJelly 2.0 multi-step (``step_mode='m'``), if importable (a
  benchmark-only extra: ``pip install --no-deps spikingjelly==2.0.0
  loguru``): ``IFNode(v_threshold=theta, v_reset=None)`` (reset by
  subtraction, V starts at 0, unsigned, spikes out) and
  ``HalfThresholdIFNode`` (V starts at theta / 2: our unsigned rule).

Rounds interleave the variants, so load from elsewhere hits all alike;
CUDA times come from CUDA events. The last column says whether a variant's
spikes equal the reference loop's of the same sign rule.

    python benchmarks/bench_neuron.py --device cpu|cuda [--timesteps 3 7 15]
"""
import argparse
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from core_import import import_core  # noqa: E402
from results import add_results_arg, environment, record  # noqa: E402
from timing import Timer  # noqa: E402

#: the neurons' own margin, so the official-style loop decides alike
NEG_EPS = 1e-6


def official_style_signed(x, theta, timesteps):
    """Signed IF the plain way: per step, masks and masked assignments
    (each a separate pass, boolean indexing, a fresh tensor per step)."""
    v = torch.full_like(x[0], 0.5) * theta
    count = torch.zeros_like(x[0])
    out = []
    for t in range(timesteps):
        v = v + x[t]
        fire = v >= theta
        v[fire] = v[fire] - theta
        count[fire] = count[fire] + 1
        neg = (v < -NEG_EPS * theta) & (count > 0)
        v[neg] = v[neg] + theta
        count[neg] = count[neg] - 1
        spike = torch.zeros_like(v)
        spike[fire] = 1.0
        spike[neg] = -1.0
        out.append(spike * theta)
    return torch.stack(out)


def spikingjelly_nodes(theta: float, device):
    """{label: (module, kind)} of SpikingJelly's multi-step IF nodes, or {}
    with the reason printed."""
    try:
        from spikingjelly.activation_based import neuron as sj
    except ImportError as err:
        print(f'SpikingJelly not importable ({err}); its rows are left out '
              '(pip install --no-deps spikingjelly==2.0.0 loguru)')
        return {}
    nodes = {'SpikingJelly IFNode (V0 = 0), unsigned': sj.IFNode(
        v_threshold=theta, v_reset=None, step_mode='m').to(device)}
    if hasattr(sj, 'HalfThresholdIFNode'):
        nodes['SpikingJelly HalfThresholdIFNode, unsigned'] = \
            sj.HalfThresholdIFNode(v_threshold=theta,
                                   step_mode='m').to(device)
    return nodes


def compiled_reference(th, T):
    """``torch.compile`` of the signed reference loop for T steps (the
    compile step of ``run_gpu.sh`` builds the same one, so this run finds
    it in the compile caches)."""
    from fastsnn_mm.spiking.functional import if_loop
    return torch.compile(lambda xs: if_loop(xs, th, True, False, T) * th,
                         dynamic=False)


def variants(T, x, theta, device, args):
    """{label: (callable returning the update's output, sign rule, output
    kind)}; kind 'scaled' = spike x theta, 'spikes' = spikes only."""
    from fastsnn_mm.spiking import IFNeuron, SignedIFNeuron, timestep_context
    from fastsnn_mm.spiking.functional import if_loop
    B = x.shape[1]
    folded = x.reshape(T * B, *x.shape[2:])
    th = torch.tensor([theta], device=device)
    out = {}
    for signed, cls in ((True, SignedIFNeuron), (False, IFNeuron)):
        neuron = cls(theta=theta).to(device)

        def ours(neuron=neuron):
            with timestep_context(neuron, T, B, 'folded'):
                return neuron(folded)
        out[f"ours, {'signed' if signed else 'unsigned'}"] = (
            ours, signed, 'scaled')
    for signed in (True, False):
        out[f"reference loop, {'signed' if signed else 'unsigned'}"] = (
            lambda signed=signed: if_loop(x, th, signed, False, T) * th,
            signed, 'scaled')
    out['official-code style loop, signed'] = (
        lambda: official_style_signed(x, th, T), True, 'scaled')
    if args.compile:
        compiled = compiled_reference(th, T)
        out['torch.compile(reference loop), signed'] = (
            lambda: compiled(x), True, 'scaled')
    for label, node in args.sj_nodes.items():
        def sj_run(node=node):
            node.reset()
            return node(x)
        out[label] = (sj_run, False, 'spikes')
    return out


def measure(T, args):
    """{label: (median ms, min, max, same spikes as the reference)}."""
    device = args.device
    g = torch.Generator(device='cpu').manual_seed(T)
    # mean 0.3, std 0.6: most neurons fire now and then, and the signed
    # rule's negative spikes occur (inputs go below zero after a spike)
    x = (torch.randn(T, *args.shape, generator=g) * 0.6 + 0.3).to(device)
    runs = variants(T, x, args.theta, device, args)
    timer = Timer(device)
    failed = {}
    with torch.no_grad():
        outputs = {}
        for k, (fn, _, _) in list(runs.items()):  # first call: compiles too
            try:
                outputs[k] = fn()
            except Exception as err:  # one broken variant: the rest still run
                print(f'T={T} {k}: failed, left out: '
                      f'{type(err).__name__}: {err}'.splitlines()[0])
                failed[k] = f'failed ({type(err).__name__})'
                del runs[k]
        ref = {s: outputs[f"reference loop, {'signed' if s else 'unsigned'}"]
               for s in (True, False)}
        same = {}
        for k, (_, signed, kind) in runs.items():
            o = outputs[k].reshape(ref[signed].shape)
            r = ref[signed] if kind == 'scaled' else ref[signed] / args.theta
            if k.startswith('SpikingJelly IFNode'):
                same[k] = 'n/a (V0 = 0)'
            else:
                same[k] = 'yes' if torch.equal(o, r) else \
                    f'no ({(o != r).float().mean().item():.2e} differ)'
        del outputs, ref
        for _ in range(args.warmup):
            for fn, _, _ in runs.values():
                fn()
        times = {k: [] for k in runs}
        for _ in range(args.repeats):
            for k, (fn, _, _) in runs.items():
                times[k].append(timer(fn))
    out = {k: (statistics.median(v), min(v), max(v), same[k])
           for k, v in times.items()}
    out.update({k: (float('nan'), ) * 3 + (why, )
                for k, why in failed.items()})
    return out


def same_at_every_T(results, timesteps, label) -> str:
    verdicts = {T: results[T][label][3] for T in timesteps}
    if len(set(verdicts.values())) == 1:
        return verdicts[timesteps[0]]
    return '; '.join(f'T={T}: {v}' for T, v in verdicts.items())


def plot(results, timesteps, device_name, path):
    """Grouped bars: one group per T, one bar per variant (log scale)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels = list(results[timesteps[0]])
    fig, ax = plt.subplots(figsize=(8, 5))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        xs = [j + (i - (len(labels) - 1) / 2) * width
              for j in range(len(timesteps))]
        ax.bar(xs, [results[T][label][0] for T in timesteps], width,
               label=label)
    ax.set_xticks(range(len(timesteps)))
    ax.set_xticklabels([f'T = {T}' for T in timesteps])
    ax.set_yscale('log')
    ax.set_ylabel('ms per T-step update (median)')
    ax.set_title(f'IF update of [T, 8, 64, 40, 40] float32, {device_name}',
                 fontsize=9)
    ax.legend(fontsize=7, ncol=3, loc='upper center',
              bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f'plot: {path}')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--device', default='cpu',
                   help='cpu or cuda (default cpu)')
    p.add_argument('--timesteps', type=int, nargs='+', default=[3, 7, 15])
    p.add_argument('--shape', type=int, nargs='+', default=[8, 64, 40, 40],
                   help='one step\'s shape (default 8 64 40 40)')
    p.add_argument('--theta', type=float, default=1.0)
    p.add_argument('--repeats', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, help='torch CPU threads')
    p.add_argument('--no-compile', dest='compile', action='store_false',
                   help='leave out torch.compile of the reference loop')
    p.add_argument('--no-spikingjelly', dest='spikingjelly',
                   action='store_false', help='leave out SpikingJelly')
    p.add_argument('--plot', help='bar chart PNG (default: beside '
                   '--results, neuron_<device>.png)')
    add_results_arg(p)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA GPU visible to torch')
    if args.threads:
        torch.set_num_threads(args.threads)
    if min(args.timesteps) < 1 or args.repeats < 1:
        p.error('--timesteps and --repeats must be >= 1')
    mode = import_core()
    args.sj_nodes = spikingjelly_nodes(args.theta, device) \
        if args.spikingjelly else {}
    env = environment(device)
    print(f"neuron update, step shape {args.shape}, {env['device']}, torch "
          f"{env['torch']}, fastsnn_mm import: {mode}; median of "
          f'{args.repeats} interleaved rounds after {args.warmup} warm-up')
    results = {}
    for T in args.timesteps:
        results[T] = measure(T, args)
        for k, (med, lo, hi, same) in results[T].items():
            print(f'T={T:<3} {k:<46} {med:9.3f} ms  ({lo:.3f} - {hi:.3f})  '
                  f'same spikes as reference: {same}', flush=True)
    labels = list(results[args.timesteps[0]])
    columns = ['variant'] + [f'T={T} (ms)' for T in args.timesteps] + \
        ['spikes = reference loop']
    rows = [[k] + [f'{results[T][k][0]:.3f}' for T in args.timesteps] +
            [same_at_every_T(results, args.timesteps, k)] for k in labels]
    png = args.plot or os.path.join(
        os.path.dirname(os.path.abspath(args.results)),
        f'neuron_{device.type}.png')
    plot(results, args.timesteps, env['device'], png)
    if args.record:
        shape = 'x'.join(map(str, args.shape))
        notes = [f'Median of {args.repeats} interleaved rounds after '
                 f'{args.warmup} warm-up; step shape {shape}.']
        if not args.sj_nodes:
            notes.append('SpikingJelly was not importable in this run: its '
                         'rows are missing.')
        print('updated', record('neuron', env, f'step shape {shape}',
                                columns, rows, notes, plot=png,
                                md_path=args.results))
    return results


if __name__ == '__main__':
    main()
