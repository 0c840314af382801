"""Check that a config's model converts to an SNN that is right: QANN and
SNN on the same inputs, every neuron layer's spike counts against the QANN
levels (exact, a timing error, an error inherited from earlier layers, or
wrong), every output against the QANN's.

    python tools/analysis_tools/check_conversion.py CONFIG [CHECKPOINT] \\
        [--timesteps T] [--neuron signed] [--input-size 64 64] \\
        [--batch-size 2] [--num-batches 1] [--out-json FILE] \\
        [--cfg-options ...]

Without a checkpoint the model keeps its random initial weights, its BN
statistics are averaged over a few training-mode passes and its clips are
calibrated, on random inputs. Exit code 0: the conversion is right; 1: some
layer or output is wrong (listed); 2: the arguments or config are.
"""
import argparse
import json
import os.path as osp
import sys

import torch
from mmengine.registry import MODELS, init_default_scope

import fastsnn_mm  # noqa: F401
from fastsnn_mm.analysis.conversion_check import (
    convert_and_check,
    format_check,
    settle_untrained,
)
from fastsnn_mm.errors import BadArgumentError
from fastsnn_mm.quantization.call_sites import trace_input
from fastsnn_mm.spiking.rules import NEURON_RULES
from fastsnn_mm.utils.atomic import atomic_write
from fastsnn_mm.utils.checkpoint_check import (
    check_checkpoint_fits,
    read_state_dict,
)
from fastsnn_mm.utils.launch import (
    add_common_args,
    check_task_packages,
    fail,
    load_config,
    run_main,
)


def parse_args(argv=None):
    parser = add_common_args(argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument('checkpoint', nargs='?',
                        help='QANN checkpoint (default: random weights, '
                        'calibrated clips)')
    parser.add_argument('--timesteps', type=int,
                        help='T (default 2^b - 1)')
    parser.add_argument('--neuron', default='signed',
                        choices=sorted(NEURON_RULES))
    parser.add_argument('--input-size', type=int, nargs=2, default=[64, 64],
                        metavar=('H', 'W'))
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--num-batches', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out-json', help='write the result here')
    args = parser.parse_args(argv)
    for name in ('batch_size', 'num_batches'):
        if getattr(args, name) < 1:
            fail(f'--{name.replace("_", "-")} must be >= 1, got '
                 f'{getattr(args, name)}')
    if args.timesteps is not None and args.timesteps < 1:
        fail(f'--timesteps must be >= 1, got {args.timesteps}')
    if min(args.input_size) < 1:
        fail(f'--input-size must be positive, got {args.input_size}')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        fail(f'checkpoint {args.checkpoint} not found')
    return args


def build_model(cfg):
    """The config's model, a QANN (any ``snn=dict(...)`` dropped: the check
    converts by itself)."""
    check_task_packages(cfg)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    cfg.model.pop('snn', None)
    model = MODELS.build(cfg.model)
    if not hasattr(model, 'spiking_path'):
        raise BadArgumentError(
            f'{type(model).__name__} has no spiking path: use a fastsnn_mm '
            'model type with quant=dict(bits=...) in the config')
    return model.eval()


def random_batches(model, args):
    """Standard-normal images, the preprocessed inputs' scale."""
    like = trace_input(model)
    if like is None:
        raise BadArgumentError(f'{type(model).__name__} has no Conv2d to '
                               'read the input channels from')
    g = torch.Generator().manual_seed(args.seed)
    shape = (args.batch_size, like.shape[1], *args.input_size)
    return [torch.randn(shape, generator=g).to(like)
            for _ in range(args.num_batches)]


@run_main
def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    model = build_model(cfg)
    batches = random_batches(model, args)
    if args.checkpoint:
        check_checkpoint_fits(model, args.checkpoint, 'test')
        state, _ = read_state_dict(args.checkpoint)
        model.load_state_dict(state, strict=False)  # fit checked above
    else:
        settle_untrained(model, batches)
    result = convert_and_check(model, batches, args.timesteps, args.neuron)
    print(format_check(result))
    if args.out_json:
        result.update(config=args.config, checkpoint=args.checkpoint,
                      neuron=args.neuron, input=list(batches[0].shape))
        text = json.dumps(result, indent=1)
        atomic_write(args.out_json, lambda f: f.write(text), mode='w')
    return 0 if result['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
