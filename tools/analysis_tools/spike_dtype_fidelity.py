"""What running the spike-reading layers in low precision costs a trained
model: its metric on the config's test split with float32 spikes and with
each ``spike_dtype``, and the share of spike counts that change.

    python tools/analysis_tools/spike_dtype_fidelity.py CONFIG CHECKPOINT \\
        [--dtypes int8-rounded bfloat16 float16] [--timesteps T] \\
        [--neuron signed] [--count-batches 2] [--out-dir DIR] \\
        [--cfg-options test_dataloader.dataset.indices=50 ...]

The same converted SNN (CHECKPOINT: a QANN, converted at T = 2^b - 1 by
default) runs the stock test loop once per precision. While it runs, the
net spike count of every neuron, image and position on the first
``--count-batches`` test batches is kept and compared with the float32
SNN's: a count changes where a rounded weight flips a threshold
comparison. ``fidelity.md`` / ``fidelity.json`` / ``fidelity.png`` go to
``--out-dir`` (default ``<work_dir>/spike_dtype_fidelity``), each with the
test loop's wall seconds (a dtype without a fast path on this device is
slow, and says so once).
"""
import argparse
import json
import os
import os.path as osp
import time
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch
from mmengine.runner import Runner

import fastsnn_mm  # noqa: F401
from fastsnn_mm.spiking import neurons_of
from fastsnn_mm.spiking.low_precision import SPIKE_DTYPES
from fastsnn_mm.spiking.rules import NEURON_RULES
from fastsnn_mm.utils.allocator import retain_freed_memory
from fastsnn_mm.utils.launch import (
    add_common_args,
    check_checkpoint,
    check_data,
    fail,
    load_config,
    run_main,
)
from fastsnn_mm.utils.modules import forward_hooks, unwrap_model

HEADLINE = ('accuracy/top1', 'pascal_voc/mAP', 'mIoU')


def parse_args(argv=None):
    p = add_common_args(argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument('checkpoint', help='QANN checkpoint')
    p.add_argument('--dtypes', nargs='+', default=['int8-rounded'],
                   choices=[d for d in SPIKE_DTYPES if d is not None])
    p.add_argument('--timesteps', type=int, default=None,
                   help='default 2^b - 1')
    p.add_argument('--neuron', default='signed',
                   choices=sorted(NEURON_RULES))
    p.add_argument('--count-batches', type=int, default=2,
                   help='test batches whose spike counts are compared')
    p.add_argument('--out-dir')
    args = p.parse_args(argv)
    if args.count_batches < 1:
        fail(f'--count-batches must be >= 1, got {args.count_batches}')
    if not osp.isfile(args.checkpoint):
        fail(f'checkpoint {args.checkpoint} not found')
    return args


class CountRecorder:
    """Net spike counts per neuron call on the first ``batches`` test
    batches (each call's output holds all T steps of the batch: the SNN
    runs with ``time_chunk = T``)."""

    def __init__(self, model, timesteps, batches):
        self.model, self.T, self.batches = model, timesteps, batches
        self.counts, self.calls = [], 0

    def hook(self, neuron):
        def record(mod, args, out):
            T = self.T
            if out.shape[0] < T or out.shape[0] % T:
                return  # the one-image, one-step pass that sizes the run
            if self.calls < self.batches * self.per_batch:
                steps = out.detach().reshape(T, -1, *out.shape[1:])
                counts = torch.round(steps.sum(0) / mod.theta)
                self.counts.append(counts.to(torch.int8))
            self.calls += 1
        return record

    def __enter__(self):
        neurons = neurons_of(self.model)
        self.per_batch = len(neurons)
        self._hooks = forward_hooks(neurons, self.hook)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self._hooks.__exit__(*exc)


def changed_share(ref, low):
    """Share of counts in ``low`` that differ from ``ref``."""
    if len(ref) != len(low):
        fail('the low-precision SNN called its neurons in another order '
             f'({len(low)} calls against {len(ref)})')
    changed = sum(int((a != b).sum()) for a, b in zip(ref, low))
    return changed / max(1, sum(a.numel() for a in ref))


def headline(metrics):
    return next(((k, float(metrics[k])) for k in HEADLINE if k in metrics),
                (None, None))


def measure(runner, model, args, spike_dtype):
    """One test run of the SNN in ``spike_dtype``: metrics, kept counts,
    seconds."""
    model.to_snn(timesteps=args.timesteps, neuron=args.neuron,
                 spike_dtype=spike_dtype)
    T = model.snn_cfg['timesteps']
    model.to_snn(timesteps=T, neuron=args.neuron, time_chunk=T,
                 spike_dtype=spike_dtype)
    runner.logger.info(f'[fidelity] spikes in {spike_dtype or "float32"}, '
                       f'T={T}')
    with CountRecorder(model, T, args.count_batches) as rec:
        start = time.perf_counter()
        metrics = runner.test()
        seconds = time.perf_counter() - start
    return T, metrics, rec.counts, seconds


def write(out_dir, rows, meta):
    os.makedirs(out_dir, exist_ok=True)
    lines = [f'{meta["config"]}, {meta["checkpoint"]}: {meta["neuron"]} '
             f'SNN, T={meta["T"]}, test split',
             '', '| spikes in | metric | change against float32 | spike '
             'counts changed | test seconds |', '|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["spike_dtype"]} | {r["key"]} {r["value"]:.4f} '
                     f'| {r["delta"]:+.4f} | {100 * r["changed"]:.4f} % | '
                     f'{r["seconds"]:.0f} |')
    text = '\n'.join(lines) + '\n'
    with open(osp.join(out_dir, 'fidelity.md'), 'w') as f:
        f.write(text)
    with open(osp.join(out_dir, 'fidelity.json'), 'w') as f:
        json.dump(dict(meta, rows=rows), f, indent=2)
    plot(rows, osp.join(out_dir, 'fidelity.png'))
    return text


def plot(rows, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 3))
    FigureCanvasAgg(fig)
    names = [r['spike_dtype'] for r in rows]
    ax = fig.add_subplot(1, 2, 1)
    ax.bar(names, [r['value'] for r in rows], color='tab:blue')
    ax.set_ylim(min(r['value'] for r in rows) * 0.98,
                max(r['value'] for r in rows) * 1.01)
    ax.set_title(rows[0]['key'], fontsize=9)
    ax = fig.add_subplot(1, 2, 2)
    ax.bar(names, [100 * r['changed'] for r in rows], color='tab:orange')
    ax.set_title('spike counts changed (%)', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@run_main
def main(argv=None):
    args = parse_args(argv)
    retain_freed_memory()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    cfg.model.pop('snn', None)  # converted here, once per precision
    check_data(cfg, ['test'])
    runner = Runner.from_cfg(cfg)
    if check_checkpoint(runner, args.checkpoint, 'test').get('snn'):
        fail(f'{args.checkpoint} is an SNN checkpoint: pass the QANN it was '
             'converted from')
    model = unwrap_model(runner.model)
    if not hasattr(model, 'to_snn'):
        fail(f'{type(model).__name__} cannot run as an SNN: use a fastsnn_mm '
             'model type')
    runner.load_or_resume()
    rows, ref = [], None
    for dtype in [None] + list(dict.fromkeys(args.dtypes)):
        T, metrics, counts, seconds = measure(runner, model, args, dtype)
        key, value = headline(metrics)
        if ref is None:
            ref, base = counts, value
        rows.append(dict(spike_dtype=dtype or 'float32', key=key,
                         value=value, delta=value - base,
                         changed=changed_share(ref, counts),
                         seconds=seconds, metrics={
                             k: float(v) for k, v in metrics.items()
                             if isinstance(v, (int, float))}))
    out_dir = args.out_dir or osp.join(runner.work_dir,
                                       'spike_dtype_fidelity')
    meta = dict(config=args.config, checkpoint=args.checkpoint,
                neuron=args.neuron, T=T, count_batches=args.count_batches)
    print(write(out_dir, rows, meta))
    runner.logger.info(f'[fidelity] wrote fidelity.md, .json, .png to '
                       f'{out_dir}')


if __name__ == '__main__':
    main()
