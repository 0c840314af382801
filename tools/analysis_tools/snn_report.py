"""Report how a QANN checkpoint behaves as an SNN: metric vs T for each
neuron type, per-layer firing rates and spike-count mismatch, SynOps and
energy, written as report.md, report.json and PNG plots.

    python tools/analysis_tools/snn_report.py CONFIG CHECKPOINT \
        [--timesteps 1 3 7 15] [--neuron signed unsigned] [--num-batches 2] \
        [--out-dir DIR] [--finetuned SNN_CKPT] [--cfg-options ...]

Works for any fastsnn_mm task model: metrics come from the config's test
loop, layer statistics from the model's spiking path. With ``--finetuned``
(the ``snn_finetuned_<neuron>_T<T>.pth`` that LayerwiseFinetuneLoop saves
from CHECKPOINT) the tuned SNN's metric and per-layer statistics, against
the same QANN, stand next to the plain conversion's: the per-layer
mismatch before and after fine-tuning.
"""
import argparse
import copy
import itertools
import os.path as osp

from mmengine.runner import Runner

import fastsnn_mm  # noqa: F401
from fastsnn_mm.analysis import (
    collect_layer_stats,
    layer_macs,
    synops_table,
    write_report,
)
from fastsnn_mm.errors import FastSNNError
from fastsnn_mm.spiking.rules import NEURON_RULES
from fastsnn_mm.spiking.settings import SNNSettings
from fastsnn_mm.tasks import TASK_WRAPPERS
from fastsnn_mm.utils.allocator import retain_freed_memory
from fastsnn_mm.utils.checkpoint_check import (
    check_checkpoint_fits,
    read_state_dict,
)
from fastsnn_mm.utils.launch import (
    add_common_args,
    check_data,
    fail,
    load_config,
)
from fastsnn_mm.utils.modules import unwrap_model


def parse_args(argv=None):
    parser = add_common_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument('checkpoint', help='QANN (or SNN) checkpoint')
    parser.add_argument('--timesteps', type=int, nargs='+',
                        default=[1, 3, 7, 15], help='SNN time steps to test')
    parser.add_argument('--neuron', nargs='+', default=['signed', 'unsigned'],
                        choices=sorted(NEURON_RULES))
    parser.add_argument('--num-batches', type=int, default=2,
                        help='test batches for the per-layer statistics')
    parser.add_argument('--out-dir', help='default <work_dir>/snn_report')
    parser.add_argument('--finetuned', metavar='SNN_CKPT',
                        help='an SNN fine-tuned from CHECKPOINT by '
                        'LayerwiseFinetuneLoop, reported next to the plain '
                        'conversion')
    args = parser.parse_args(argv)
    bad = [t for t in args.timesteps if t < 1]
    if bad:
        fail(f'--timesteps must all be >= 1, got {bad[0]}')
    if args.num_batches < 1:
        fail(f'--num-batches must be >= 1, got {args.num_batches}')
    if not osp.isfile(args.checkpoint):
        fail(f'checkpoint {args.checkpoint} not found')
    if args.finetuned is not None:
        args.finetuned = read_finetuned(args.finetuned)
    args.neuron = list(dict.fromkeys(args.neuron))
    return args


def read_finetuned(path):
    """(path, SNN settings, weights) of a fine-tuned SNN checkpoint."""
    try:
        state, meta = read_state_dict(path)
    except FastSNNError as err:
        fail(str(err))
    if not meta.get('snn'):
        fail(f'--finetuned {path} is not a fine-tuned SNN checkpoint (no '
             'meta.snn): pass the snn_finetuned_<neuron>_T<T>.pth that '
             'LayerwiseFinetuneLoop wrote to its work dir')
    return path, SNNSettings.from_saved(meta['snn']), state


def build_runner(args):
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    # the report converts by itself; a lazily converting model would test
    # the SNN where the QANN is meant
    cfg.model.pop('snn', None)
    check_data(cfg, ['test'])
    runner = Runner.from_cfg(cfg)
    model = unwrap_model(runner.model)
    if not hasattr(model, 'to_snn'):
        fail(f'{type(model).__name__} cannot run as an SNN: use a fastsnn_mm '
             f'model type ({", ".join(TASK_WRAPPERS)})')
    return runner, model


def first_batches(runner, model, num):
    """The first ``num`` test batches, preprocessed as the model sees them."""
    loader = runner.test_loop.dataloader
    return [model.data_preprocessor(data, False)['inputs']
            for data in itertools.islice(loader, num)]


def main(argv=None):
    args = parse_args(argv)
    retain_freed_memory()  # this process only: SNN passes reuse big buffers
    runner, model = build_runner(args)
    log = runner.logger.info
    out_dir = args.out_dir or osp.join(runner.work_dir, 'snn_report')

    log('[snn_report 1/4] QANN metric')
    results = [dict(model='QANN', neuron='-', T='-', **runner.test())]
    qann = copy.deepcopy(model).eval()  # loaded now; to_snn converts in place
    for T, neuron in itertools.product(args.timesteps, args.neuron):
        log(f'[snn_report 2/4] SNN metric: {neuron} neuron, T={T}')
        model.to_snn(timesteps=T, neuron=neuron)
        results.append(dict(model='SNN', neuron=neuron, T=T,
                            **runner.test()))

    log(f'[snn_report 3/4] per-layer statistics on {args.num_batches} '
        'test batch(es)')
    batches = first_batches(runner, qann, args.num_batches)
    stats = {}
    for neuron in args.neuron:
        snn = copy.deepcopy(qann)
        snn.to_snn(neuron=neuron)  # default T = 2^b - 1
        stats[neuron] = collect_layer_stats(qann, snn, batches)
        log(f'  {neuron}: T={stats[neuron]["timesteps"]}, '
            f'{len(stats[neuron]["layers"])} neuron layers')

    if args.finetuned:
        path, snn_cfg, weights = args.finetuned
        T, neuron = snn_cfg['timesteps'], snn_cfg['neuron']
        label = f'{neuron} fine-tuned'
        log(f'[snn_report 3/4] fine-tuned SNN {path}: {neuron} neuron, '
            f'T={T}')
        try:  # every key must fit the QANN it was tuned from
            check_checkpoint_fits(qann, path, 'test')
        except FastSNNError as err:
            fail(f'--finetuned: {err}')
        tuned = copy.deepcopy(qann)
        for net in (tuned, model):
            net.to_snn(timesteps=T, neuron=neuron)
            net.load_state_dict(weights, strict=False)  # fit checked above
        stats[label] = collect_layer_stats(qann, tuned, batches)
        results.append(dict(model='SNN fine-tuned', neuron=neuron, T=T,
                            **runner.test()))

    log('[snn_report 4/4] synaptic operations and energy')
    macs = layer_macs(qann, batches[0])
    if macs is None:
        log('  FlopAnalyzer could not trace the spiking path; MACs are '
            'counted from layer shapes')
    synops = {n: synops_table(s, macs) for n, s in stats.items()}

    meta = dict(config=args.config, checkpoint=args.checkpoint,
                model=type(model).__name__, batches=args.num_batches,
                images=sum(len(b) for b in batches))
    paths = write_report(out_dir, results, stats, synops, meta)
    with open(paths['markdown']) as f:
        print(f.read())
    log(f'[snn_report] wrote {paths["markdown"]}, {paths["json"]} and '
        f'{len(paths["plots"])} plot(s) to {out_dir}')


if __name__ == '__main__':
    main()
