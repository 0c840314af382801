"""The benchmarks' shared record: ``results.json`` and ``RESULTS.md``.

Each benchmark run stores its table under (benchmark, device, setting) in
``results.json`` and re-renders ``RESULTS.md`` from all stored runs, so rows
measured on a CPU stay beside rows measured on a GPU, and a new run replaces
only its own earlier rows. Both files are written atomically (a temporary
file in the same folder, then ``os.replace``): an interrupted run leaves the
previous files whole.
"""
import datetime
import json
import os
import platform
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MD = os.path.join(HERE, 'RESULTS.md')

#: Sections of RESULTS.md, in order: key -> (title, what the table shows).
SECTIONS = {
    'neuron': (
        'Neuron update alone',
        'Milliseconds per T-step update of one [T, 8, 64, 40, 40] float32 '
        'tensor, theta = 1 (median of interleaved rounds; '
        '`benchmarks/bench_neuron.py`). "ours" is the neuron module\'s '
        'forward under `timestep_context` (CPU: the compiled C kernel; CUDA: '
        'what the neuron dispatches to), spike x theta out. The last column '
        'says whether the spikes equal the reference loop\'s (signed rows '
        'against the signed reference, unsigned rows against the unsigned '
        'one). SpikingJelly\'s `IFNode` starts V at 0 (ours at theta/2) and '
        'returns spikes, not spike x theta; its `HalfThresholdIFNode` follows '
        'our unsigned rule.'),
    'snn_time': (
        'SNN against T QANN passes: time',
        'wall(SNN) / (T x wall(QANN)), QResNet-18, 3-bit, median of paired '
        'rounds (`benchmarks/bench_snn.py`).'),
    'snn_memory': (
        'SNN against the QANN: peak memory',
        'Peak working memory of one inference (`benchmarks/bench_snn.py`).'),
    'snn_peer': (
        'Whole network against SpikingJelly',
        'The same converted QResNet-18 (3-bit, unsigned IF) run by us and '
        'as a SpikingJelly 2.0 multi-step network, same T, same input '
        '(`benchmarks/bench_snn.py --peer spikingjelly`); "outputs equal" '
        'compares the two networks\' outputs averaged over T.'),
    'spike_dtype': (
        'Spike-reading layers in low precision',
        'wall(SNN) / (T x wall(QANN float32)) with the convs that read '
        'spikes in int8 / bfloat16 (`benchmarks/bench_spike_dtype.py`; '
        '`spike_dtype` of `convert_to_snn`), what that changes against the '
        'float32 SNN, and the time per spike-reading conv.'),
    'qat_step': (
        'QAT train step against the ReLU step',
        'Median train-step time (forward, backward, SGD step) of the same '
        'network with QuantReLU and with ReLU '
        '(`benchmarks/bench_qat_step.py`).'),
}

#: Where no GPU row exists yet, RESULTS.md says so instead of a number.
PENDING = ('GPU rows: pending. No GPU was at hand when these benchmarks '
           'were last run; `bash benchmarks/run_gpu.sh` on a CUDA machine '
           'measures them (see README, "On a GPU").')


def data_path(md_path: str) -> str:
    """RESULTS.md's data: results.json in the same folder."""
    folder, name = os.path.split(md_path)
    return os.path.join(folder, os.path.splitext(name)[0].lower() + '.json')


def environment(device) -> dict:
    """Who measured: device name, torch version, date (UTC)."""
    device = torch.device(device)
    env = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y-%m-%d %H:%M UTC'), torch=torch.__version__,
        python=platform.python_version(), kind=device.type)
    if hasattr(os, 'getloadavg'):  # how busy the machine was (CPU rows)
        env['load_start'] = round(os.getloadavg()[0], 1)
        env['cores'] = os.cpu_count()
    if device.type == 'cuda':
        env['device'] = torch.cuda.get_device_name(device)
        env['cuda'] = torch.version.cuda
        try:
            import triton
            env['triton'] = triton.__version__
        except ImportError:
            pass
    else:
        env['device'] = f'{_cpu_name()}, {torch.get_num_threads()} torch ' \
            'threads'
    return env


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'CPU'


def load(md_path: str = DEFAULT_MD) -> dict:
    path = data_path(md_path)
    if not os.path.exists(path):
        return {'runs': []}
    try:
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data.get('runs'), list):
            raise ValueError('no "runs" list')
    except (ValueError, AttributeError) as err:
        raise SystemExit(
            f'error: {path} is not a benchmark record ({err}); restore it '
            f'(git checkout -- {os.path.relpath(path)}) or delete it to '
            'start a new one') from None
    return data


def _write_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-',
                               suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def record(bench: str, env: dict, setting: str, columns, rows, notes=(),
           plot: str = None, md_path: str = DEFAULT_MD) -> str:
    """Store one run's table (replacing the same benchmark, device and
    setting's earlier run) and re-render RESULTS.md; returns its path."""
    if bench not in SECTIONS:
        raise ValueError(f'unknown benchmark {bench!r}: one of '
                         f'{sorted(SECTIONS)}')
    columns = [str(c) for c in columns]
    rows = [[str(v) for v in r] for r in rows]
    for r in rows:
        if len(r) != len(columns):
            raise ValueError(f'row {r} has {len(r)} cells for '
                             f'{len(columns)} columns')
    data = load(md_path)
    env = dict(env)
    env.setdefault('command', command_line())
    if 'load_start' in env:
        env['load_end'] = round(os.getloadavg()[0], 1)
    run = dict(bench=bench, env=env, setting=setting, columns=columns,
               rows=rows, notes=list(notes))
    folder = os.path.dirname(os.path.abspath(md_path))
    if plot and os.path.abspath(plot).startswith(folder + os.sep):
        # only a picture kept beside the record is linked from it
        run['plot'] = os.path.relpath(os.path.abspath(plot), folder)
    key = (bench, env['device'], setting)
    data['runs'] = [r for r in data['runs']
                    if (r['bench'], r['env']['device'], r['setting']) != key]
    data['runs'].append(run)
    _write_atomic(data_path(md_path), json.dumps(data, indent=1) + '\n')
    _write_atomic(md_path, render(data))
    return md_path


def command_line(argv=None) -> str:
    """The command that measured a run, paths shortened to file names."""
    argv = list(sys.argv if argv is None else argv)
    script = f'benchmarks/{os.path.basename(argv[0])}' if argv else '?'
    args = [os.path.basename(a) if os.path.isabs(a) else a for a in argv[1:]]
    return ' '.join(['python', script] + args)


def render(data: dict) -> str:
    out = ['# Benchmark results', '',
           'Written by the scripts in `benchmarks/` from `results.json` '
           '(each run replaces its own earlier rows; edit neither by hand). '
           'Every ratio is measured side by side in one run. CPU rows come '
           'from a 2-core development VM shared with other jobs (the load '
           'average beside each table says how busy it was; at loads far '
           'above 2, single rounds swing by a factor of 2 or more); GPU rows '
           'from the machine named above their table.', '']
    for bench, (title, what) in SECTIONS.items():
        runs = [r for r in data['runs'] if r['bench'] == bench]
        out += [f'## {title}', '', what, '']
        if not any(r['env'].get('kind') == 'cuda' for r in runs):
            out += [PENDING, '']
        # CPU runs first, then GPU runs; each group in the order recorded
        for run in sorted(runs, key=lambda r: r['env'].get('kind') == 'cuda'):
            env = run['env']
            extra = ', '.join(f'{k} {env[k]}' for k in ('cuda', 'triton')
                              if k in env)
            load = ''
            if 'load_start' in env:
                load = (f", load average {env['load_start']} at start, "
                        f"{env.get('load_end', '?')} at end, "
                        f"{env.get('cores', '?')} cores")
            out += [f"### {env['device']}: {run['setting']}", '',
                    f"torch {env['torch']}{', ' + extra if extra else ''}, "
                    f"python {env['python']}, {env['date']}{load}", '']
            if env.get('command'):
                out += [f"`{env['command']}`", '']
            out.append('| ' + ' | '.join(run['columns']) + ' |')
            out.append('|' + '---|' * len(run['columns']))
            out += ['| ' + ' | '.join(r) + ' |' for r in run['rows']]
            out.append('')
            out += [f'{n}' for n in run['notes']]
            if run['notes']:
                out.append('')
            if run.get('plot'):
                out += [f"![{title}, {env['device']}]({run['plot']})", '']
    return '\n'.join(out)


def add_results_arg(parser):
    parser.add_argument(
        '--results', default=DEFAULT_MD, metavar='RESULTS.md',
        help='the markdown record to update (its data: results.json beside '
        'it); default benchmarks/RESULTS.md')
    parser.add_argument('--no-record', dest='record', action='store_false',
                        help='print the tables only')
    return parser
