"""Write the synthetic shapes data set (VOC layout) used by the demo configs.

Example::

    python tools/dataset_converters/make_synthetic_voc.py \
        --out data/synthetic_voc --num-train 400 --num-val 100 --seed 0

Bad arguments end with one ``error:`` line on stderr and exit code 2.
"""
import argparse
import os
import sys
import tempfile

class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage block)."""

    def error(self, message):
        fail(message)


def fail(message: str) -> None:
    print(f'make_synthetic_voc.py: error: {message}', file=sys.stderr)
    sys.exit(2)


def parse_args(argv=None):
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--num-train', type=int, required=True)
    parser.add_argument('--num-val', type=int, required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, default=160,
                        help='image side in pixels (default 160)')
    args = parser.parse_args(argv)
    if args.num_train < 1:
        fail(f'--num-train must be >= 1, got {args.num_train}')
    if args.num_val < 1:
        fail(f'--num-val must be >= 1, got {args.num_val}')
    return args


def check_writable(out: str) -> None:
    """Create ``out`` if needed and prove a file can be written there."""
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        fail(f'--out {out} is not a writable directory ({reason})')


def main(argv=None) -> None:
    args = parse_args(argv)
    # imported after the cheap checks: importing fastsnn_mm takes seconds
    from fastsnn_mm.datasets.synthetic_voc import (MIN_SIZE,
                                                   generate_synthetic_voc)
    if args.size < MIN_SIZE:
        fail(f'--size must be >= {MIN_SIZE} px, got {args.size}')
    check_writable(args.out)
    truth = generate_synthetic_voc(
        args.out, args.num_train, args.num_val, seed=args.seed,
        size=args.size, progress=True)
    count = sum(len(r['objects']) for s in truth.values() for r in s)
    print(f'wrote {args.num_train} train + {args.num_val} val images '
          f'({count} objects) to {args.out}')


if __name__ == '__main__':
    main()
