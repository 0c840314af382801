"""Evaluate a QANN checkpoint as a QANN, as its SNN, or both side by side.

    python tools/test.py CONFIG CHECKPOINT                 # QANN
    python tools/test.py CONFIG CHECKPOINT --snn [--timesteps 7]
    python tools/test.py CONFIG CHECKPOINT --snn --spike-dtype int8
    python tools/test.py CONFIG CHECKPOINT --compare --neuron signed unsigned

--compare puts beside each SNN metric its difference to the QANN on the
same images and a 95% paired bootstrap interval of that difference
(--bootstrap N resamples, 0: none).
"""
import argparse
import json
import numbers
import os
import time
import warnings

# setuptools<82 (needed by mmcv and mm config scopes) warns on import
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmengine.dist import is_main_process
from mmengine.runner import Runner

import fastsnn_mm  # noqa: F401
from fastsnn_mm.analysis.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    paired_interval,
)
from fastsnn_mm.analysis.per_image import PerImageRecordHook
from fastsnn_mm.errors import check_int
from fastsnn_mm.spiking.low_precision import SPIKE_DTYPE_CHOICES
from fastsnn_mm.spiking.rules import NEURON_RULES
from fastsnn_mm.spiking.settings import SNNSettings
from fastsnn_mm.spiking.validation import COMMAND_LINE, check_snn_arguments
from fastsnn_mm.tasks import TASK_WRAPPERS
from fastsnn_mm.utils.allocator import retain_freed_memory
from fastsnn_mm.utils.atomic import atomic_write
from fastsnn_mm.utils.launch import (
    add_common_args,
    check_checkpoint,
    check_data,
    check_task_packages,
    fail,
    load_config,
    run_main,
    setup_distributed,
)
from fastsnn_mm.utils.modules import unwrap_model


def parse_args():
    parser = add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument('checkpoint', help='QANN or SNN checkpoint')
    parser.add_argument('--snn', action='store_true',
                        help='evaluate the converted SNN instead of the QANN')
    parser.add_argument('--compare', action='store_true',
                        help='evaluate the QANN, then each requested SNN')
    parser.add_argument('--timesteps', type=int, default=None,
                        help='SNN time steps T (default 2^bits - 1)')
    parser.add_argument('--neuron', nargs='+', default=None,
                        choices=sorted(NEURON_RULES),
                        help='neuron rule(s) (default: an SNN checkpoint\'s '
                        'own, else signed)')
    parser.add_argument('--mode', default=None,
                        choices=['folded', 'streaming'],
                        help='folded: T steps folded into the batch (fast); '
                        'streaming: one step per pass with stateful neurons, '
                        'large batches in slices (least memory); default: '
                        'an SNN checkpoint\'s own, else folded')
    parser.add_argument('--time-chunk', type=int, default=None,
                        help='folded mode: at most this many steps per pass '
                        '(bounds memory; same spikes)')
    parser.add_argument('--spike-dtype', default=None,
                        choices=list(SPIKE_DTYPE_CHOICES),
                        help='run the convs/linears that read spikes in this '
                        'precision (int8: exact on weights quantized to <= 8 '
                        'bits); membranes stay float32')
    parser.add_argument('--allow-rounding', action='store_true',
                        help="--spike-dtype auto may pick bfloat16 (rounds "
                        'weights and outputs) where the device runs it fast')
    parser.add_argument('--show-dir', help='save drawn predictions here')
    parser.add_argument('--out-json', help='write the metric table as JSON')
    parser.add_argument('--bootstrap', type=int, default=DEFAULT_RESAMPLES,
                        metavar='N',
                        help='--compare: resamples of the paired bootstrap '
                        'interval of each SNN metric minus the QANN\'s '
                        f'(default {DEFAULT_RESAMPLES}; 0: no interval)')
    return parser.parse_args()


@run_main
def main():
    args = parse_args()
    # the library's own check, worded as options (one line via run_main)
    check_snn_arguments(args.timesteps, None, args.mode or 'folded',
                        args.time_chunk,
                        spelling=COMMAND_LINE)
    resamples = check_int('--bootstrap', args.bootstrap, 0,
                          hint=f'resamples, e.g. {DEFAULT_RESAMPLES}; '
                          '0 switches the interval off')
    if not os.path.isfile(args.checkpoint):
        fail(f'checkpoint {args.checkpoint} not found')
    retain_freed_memory()  # this process only: SNN passes reuse big buffers
    cfg = load_config(args)
    check_task_packages(cfg, args.config)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_drawing(cfg)
    check_data(cfg, ['test'])
    setup_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    # mmengine would skip keys that do not fit with only a warning
    fits = check_checkpoint(runner, args.checkpoint, 'test')
    model = unwrap_model(runner.model)
    recorder = None
    if args.compare and resamples:
        hook = PerImageRecordHook()
        runner.register_hook(hook)
        recorder = hook.recorder
    if (args.snn or args.compare) and not hasattr(model, 'to_snn'):
        fail(f'{type(model).__name__} cannot run as an SNN: use a fastsnn_mm '
             f'model type ({", ".join(TASK_WRAPPERS)})')

    rows, records = [], []  # records: per row, when recorded
    if not args.snn or args.compare:
        rows.append(dict(model='QANN', neuron='-', T='-',
                         **test_once(runner, args.show_dir, 'qann')))
        records.append(recorder.take() if recorder else {})
    if args.snn or args.compare:
        if not fits.get('snn'):
            # a QANN checkpoint goes into the QANN before the conversion
            # bakes its quantized weights (loaded after, a weight-quantized
            # model's latent float weights would land in the SNN); an SNN
            # checkpoint holds baked, perhaps fine-tuned, weights and loads
            # into the converted model when runner.test() runs
            runner.load_or_resume()
        for neuron in args.neuron or [None]:
            model.to_snn(**snn_settings(args, neuron, fits.get('snn')))
            settings = model.snn_cfg
            T, neuron = settings.timesteps, settings.neuron
            metrics = test_once(runner, args.show_dir, f'snn_{neuron}_T{T}')
            spikes = {} if settings.spike_dtype is None else dict(
                spike_dtype=settings.spike_dtype)
            rows.append(dict(model='SNN', neuron=neuron, T=T, **spikes,
                             **metrics))
            records.append(recorder.take() if recorder else {})
    note = ''
    if recorder is not None:
        note = add_intervals(rows, records, resamples, recorder.seconds)
    print_table(rows, runner.logger, note)
    if args.out_json and is_main_process():  # every rank has the table
        atomic_write(args.out_json, lambda f: json.dump(
            rows, f, indent=2, default=float), mode='w')


def snn_settings(args, neuron, saved):
    """convert_to_snn's arguments: an SNN checkpoint's saved settings
    (``meta['snn']``) with the options given on the command line over them,
    each change logged; for a QANN checkpoint the options and defaults."""
    given = dict(timesteps=args.timesteps, neuron=neuron, mode=args.mode,
                 time_chunk=args.time_chunk, spike_dtype=args.spike_dtype)
    rounding = dict(allow_rounding=True) if args.allow_rounding else {}
    if saved:
        return dict(SNNSettings.from_saved(saved).with_overrides(
            'the command line', **given).as_dict(), **rounding)
    given['neuron'] = neuron or 'signed'
    given['mode'] = args.mode or 'folded'
    return dict(given, **rounding)


def enable_drawing(cfg):
    """Switch on the task's stock visualization hook."""
    vis = cfg.default_hooks.get('visualization')
    if vis is None:
        fail('--show-dir needs a visualization hook in default_hooks')
    if vis['type'] == 'VisualizationHook':  # mmpretrain
        vis.update(enable=True)
    else:  # mmdet / mmseg
        vis.update(draw=True)


def test_once(runner, show_dir, label):
    """One test run whose drawings (if any) land in ``show_dir/label``."""
    draw_into(runner, show_dir, label)
    metrics = runner.test()
    if show_dir:
        collect_backend_drawings(runner, show_dir, label)
    return metrics


def collect_backend_drawings(runner, show_dir, label):
    """mmseg's hook saves through the visualizer's local backend (by
    default ``<run>/vis_data/vis_image``), where the next model would
    overwrite them: move this test's drawings to ``work_dir/show_dir/label``.
    """
    dst = os.path.join(runner.work_dir, show_dir, label)
    moved = 0
    for src in _local_image_dirs(runner):
        for name in os.listdir(src):
            if name.startswith('test_'):  # the hook names them <mode>_<img>
                os.makedirs(dst, exist_ok=True)
                os.replace(os.path.join(src, name), os.path.join(dst, name))
                moved += 1
    if moved:
        runner.logger.info(f'{moved} drawings of {label} saved in {dst}')


def _local_image_dirs(runner):
    from mmengine.visualization import LocalVisBackend
    dirs = {os.path.join(runner.log_dir, 'vis_data', 'vis_image')}
    for backend in getattr(runner.visualizer, '_vis_backends', {}).values():
        if isinstance(backend, LocalVisBackend):
            img_dir = getattr(backend, '_img_save_dir', None)
            if isinstance(img_dir, str):
                dirs.add(img_dir if os.path.isabs(img_dir) else os.path.join(
                    backend._save_dir or '', img_dir))
    return sorted(d for d in dirs if os.path.isdir(d))


def draw_into(runner, show_dir, label):
    """Point the visualization hook at ``show_dir/label`` for this run, so
    QANN and each SNN keep their own drawings (mmseg's hook writes through
    the visualizer's backends: see :func:`collect_backend_drawings`)."""
    if not show_dir:
        return
    for hook in runner.hooks:
        name = type(hook).__name__
        if name == 'DetVisualizationHook':  # relative to the run dir
            hook.test_out_dir = f'{show_dir}/{label}'
        elif name == 'VisualizationHook':  # mmpretrain
            hook.out_dir = f'{runner.work_dir}/{show_dir}/{label}'
        elif name == 'SegVisualizationHook':
            # draw with this run's visualizer (the hook takes the latest
            # one made in the process), whose backend we collect from
            hook._visualizer = runner.visualizer


#: suffixes of the columns :func:`add_intervals` puts beside a metric
DIFF, CI = '_diff', '_ci95'


def add_intervals(rows, records, resamples, record_seconds) -> str:
    """Put ``<metric>_diff`` (SNN - QANN on the same images) and
    ``<metric>_ci95`` ([lo, hi], its 95% paired bootstrap interval) into
    each SNN row whose metric has per-image records (the first row is the
    QANN); return the line that says what they are and what they cost.
    Only the main process holds records (it alone computes metrics): the
    other ranks get no columns, and write no JSON.
    """
    qann = records[0]
    if not qann:
        return ''
    start = time.perf_counter()
    images = set()
    for row, got in zip(rows[1:], records[1:]):
        for key, mine in got.items():
            if key not in qann:
                continue
            diff, lo, hi = paired_interval(mine.records, qann[key].records,
                                           mine.metric_fn, resamples,
                                           DEFAULT_SEED)
            row[key + DIFF] = diff
            row[key + CI] = [lo, hi]
            images.add(len(mine.records))
    seconds = time.perf_counter() - start
    if not images:
        return ''
    counts = '/'.join(map(str, sorted(images)))
    return (f'{DIFF[1:]}: SNN - QANN on the same {counts} test images; '
            f'{CI[1:]}: its 95% paired bootstrap interval '
            f'({resamples} resamples of the images, seed {DEFAULT_SEED}): '
            f'{seconds:.2f} s, plus {record_seconds:.2f} s keeping per-image '
            'records during the tests')


def _is_float(v) -> bool:
    # numpy scalars too: mmseg's IoUMetric reports np.float32
    return isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral)


def _columns(rows):
    """Every key of the rows, in order, with each metric's difference and
    interval columns right after the metric."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    added = {k for k in keys if k.endswith((DIFF, CI))
             and k[:-len(DIFF if k.endswith(DIFF) else CI)] in keys}
    columns = []
    for k in keys:
        if k not in added:
            columns.append(k)
            columns += [a for a in keys if a in added and a in (k + DIFF,
                                                                 k + CI)]
    return columns


def _cell(key, value):
    if key.endswith(CI) and isinstance(value, (list, tuple)):
        return '[' + ', '.join(f'{float(v):+.4f}' for v in value) + ']'
    if key.endswith(DIFF) and _is_float(value):
        return f'{float(value):+.4f}'
    return f'{float(value):.4f}' if _is_float(value) else str(value)


def print_table(rows, logger, note=''):
    keys = _columns(rows)
    lines = ['| ' + ' | '.join(keys) + ' |',
             '|' + '---|' * len(keys)]
    for r in rows:
        lines.append('| ' + ' | '.join(_cell(k, r.get(k, '')) for k in keys)
                     + ' |')
    if note:
        lines.append(note)
    logger.info('QANN vs SNN:\n' + '\n'.join(lines))


if __name__ == '__main__':
    main()
