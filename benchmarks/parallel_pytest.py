"""Run the selected tests of some files in several pytest processes at once.

The GPU run's tests step is mostly compilation (Triton builds each kernel
variant a test meets, one after another) and imports, both single-threaded;
one file can hold most of the variants. So the tests are collected once,
their ids cut into contiguous runs, one per worker (at most one per core,
8 at most), and each run goes to its own pytest process. Each worker's
output is printed whole, in order, once all have ended. Exit status 0 when
every worker passed or had nothing selected (pytest's 5), else 1. When
collection itself fails (a file does not import), each file gets its own
process instead, so the error shows under its file's name.

    python benchmarks/parallel_pytest.py [pytest options --] FILE...
"""
import os
import subprocess
import sys
import tempfile

#: pytest's exit status when the markers deselect every test
NOTHING_SELECTED = 5
MAX_WORKERS = 8
#: options that change how much pytest prints (collection needs plain ids)
VERBOSITY = ('-q', '-qq', '--quiet', '-v', '-vv', '--verbose')


def rooted(options):
    """``options`` with a ``--rootdir`` (the current folder unless given)
    and that folder: test ids are relative to it, so every process runs
    there."""
    for i, opt in enumerate(options):
        if opt == '--rootdir' and i + 1 < len(options):
            return options, os.path.abspath(options[i + 1])
        if opt.startswith('--rootdir='):
            return options, os.path.abspath(opt.split('=', 1)[1])
    return options + [f'--rootdir={os.getcwd()}'], os.getcwd()


def collect(options, files, root):
    """Test ids pytest selects in ``files``, or None when collection
    failed."""
    # one -q exactly (an ini file's addopts may add its own): ids, one a line
    options = [o for o in options if o not in VERBOSITY]
    done = subprocess.run(
        [sys.executable, '-m', 'pytest', '-o', 'addopts=', '--collect-only',
         '-q', *options, *files], capture_output=True, text=True, cwd=root)
    if done.returncode == NOTHING_SELECTED:
        return []
    if done.returncode != 0:
        return None
    return [line for line in done.stdout.splitlines() if '::' in line]


def split(ids, workers):
    """``ids`` in ``workers`` contiguous runs of near-equal length."""
    size, extra = divmod(len(ids), workers)
    runs, start = [], 0
    for i in range(workers):
        end = start + size + (i < extra)
        runs.append(ids[start:end])
        start = end
    return [r for r in runs if r]


def run_all(options, groups, root):
    """One pytest process per group of test ids or files; [(label, rc)]."""
    with tempfile.TemporaryDirectory() as logs:
        procs = []
        for i, group in enumerate(groups):
            log = open(os.path.join(logs, f'{i}.log'), 'w+')
            procs.append((group, log, subprocess.Popen(
                [sys.executable, '-m', 'pytest', *options, *group],
                stdout=log, stderr=subprocess.STDOUT, cwd=root)))
        results = []
        for group, log, proc in procs:
            rc = proc.wait()
            log.seek(0)
            label = group[0] if len(group) == 1 else \
                f'{group[0]} ... {group[-1]} ({len(group)} tests)'
            print(f'==== {label} (exit {rc})')
            print(log.read().rstrip())
            log.close()
            results.append((label, rc))
    return results


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if '--' in argv:
        cut = argv.index('--')
        options, files = argv[:cut], argv[cut + 1:]
    else:
        options, files = [], argv
    if not files:
        print('parallel_pytest: no test files given', file=sys.stderr)
        return 2
    options, root = rooted(options)
    files = [os.path.abspath(f) for f in files]
    ids = collect(options, files, root)
    if ids is None:
        print('parallel_pytest: collection failed; one process per file')
        groups = [[f] for f in files]
    elif not ids:
        print('parallel_pytest: no test selected')
        return 0
    else:
        workers = min(len(ids), os.cpu_count() or 1, MAX_WORKERS)
        groups = split(ids, workers)
    results = run_all(options, groups, root)
    failed = [label for label, rc in results
              if rc not in (0, NOTHING_SELECTED)]
    if failed or ids is None:
        print(f'parallel_pytest: failed: {"; ".join(failed) or "collection"}')
        return 1
    print(f'parallel_pytest: {len(ids)} tests in {len(groups)} processes '
          'passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
