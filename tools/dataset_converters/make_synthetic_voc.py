"""Write the synthetic shapes data set (VOC layout) used by the demo configs.

Example::

    python tools/dataset_converters/make_synthetic_voc.py \
        --out data/synthetic_voc --num-train 400 --num-val 100 --seed 0

    # plus a test split of its own: 200 images from another seed, drawn
    # in the other family (tiled backgrounds, stretched striped shapes)
    python tools/dataset_converters/make_synthetic_voc.py \
        --out data/synthetic_voc_unseen --num-train 400 --num-val 100 \
        --seed 0 --num-test 200 --test-seed 1 --test-family other

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
    parser.add_argument('--num-test', type=int, default=0,
                        help='images of a test split of its own (default '
                        '0: the test list is the val split)')
    parser.add_argument('--test-seed', type=int, default=None,
                        help='seed of the test split (default: --seed + '
                        '1000)')
    parser.add_argument('--test-family', choices=['default', 'other'],
                        default='default',
                        help="how test images are drawn: 'default' as "
                        "train and val, 'other' tiled backgrounds and "
                        'stretched striped shapes')
    args = parser.parse_args(argv)
    if args.num_train < 1:
        fail(f'--num-train must be >= 1, got {args.num_train}')
    if args.num_val < 1:
        fail(f'--num-val must be >= 1, got {args.num_val}')
    if args.num_test < 0:
        fail(f'--num-test must be >= 0, got {args.num_test}')
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
    from fastsnn_mm.datasets.synthetic_voc import (
        MIN_SIZE,
        generate_synthetic_voc,
    )
    if args.size < MIN_SIZE:
        fail(f'--size must be >= {MIN_SIZE} px, got {args.size}')
    check_writable(args.out)
    truth = generate_synthetic_voc(
        args.out, args.num_train, args.num_val, seed=args.seed,
        size=args.size, progress=True, num_test=args.num_test,
        test_seed=args.test_seed, test_family=args.test_family)
    count = sum(len(r['objects']) for s in truth.values() for r in s)
    test = f' + {args.num_test} test' if args.num_test else ''
    print(f'wrote {args.num_train} train + {args.num_val} val{test} images '
          f'({count} objects) to {args.out}')


if __name__ == '__main__':
    main()
