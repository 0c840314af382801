"""Compile, once and in parallel, the kernels the GPU run will launch.

Triton compiles a kernel the first time it meets a new specialization
(dtype, flags, sizes divisible by 16 or equal to 1), and ``torch.compile``
compiles per shape; both keep what they built in on-disk caches
(``~/.triton/cache``, Inductor's cache) that later processes read. Left to
the benchmarks, these compilations happen one after another inside timed
steps. This first step of ``run_gpu.sh`` runs tiny versions of every
workload the later steps run, each kind in its own process at the same
time, so the caches are warm when the measurements start:

* ``snn``: the benchmark network converted at T = 3, signed and unsigned,
  under each pass plan the benchmarks time (the IF kernel: fresh and
  stateful, constant and per-step input);
* ``qat``: a QAT train step, float32 and under bfloat16 autocast (the
  QuantReLU forward and backward kernels);
* ``spikingjelly``: SpikingJelly's IF nodes at every T, alone and in the
  peer network (its CUDA neurons are Triton kernels too), if it imports;
* ``neuron-T``: ``bench_neuron``'s ``torch.compile`` of the reference loop
  at its T and shape (CUDA only: the CPU check runs with ``--no-compile``).

    python benchmarks/warm_kernels.py --device cuda [--timesteps 3 7 15]
"""
import argparse
import importlib.util
import multiprocessing
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

#: one step's shape in bench_neuron (its default --shape)
NEURON_SHAPE = (8, 64, 40, 40)


def warm_snn(device):
    from bench_net import build

    from fastsnn_mm import convert_to_snn
    # sizes divisible by 16, as the benchmarks' (Triton specializes on it)
    net = build(16, 3).to(device)
    x = torch.randn(4, 3, 32, 32, device=device)
    T = 3
    with torch.no_grad():
        for neuron in ('signed', 'unsigned'):
            for plan in (dict(mode='folded'), dict(mode='folded',
                                                   time_chunk=T),
                         dict(mode='folded', time_chunk=2),
                         dict(mode='streaming')):
                convert_to_snn(net, timesteps=T, neuron=neuron, **plan)(x)


def warm_qat(device):
    from bench_qat_step import build, step_fn

    from fastsnn_mm.quantization import quantize_model
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (4, ), device=device)
    for amp in (False, True):
        model = quantize_model(build('resnet18', 16).to(device).train(), 3,
                               alpha=2.0)
        step_fn(model, x, y, amp=amp)()


def warm_spikingjelly(device, timesteps):
    if importlib.util.find_spec('spikingjelly') is None:
        return  # its benchmark rows are left out as well
    from bench_net import build
    from bench_neuron import spikingjelly_nodes
    from peer_spikingjelly import run_spikingjelly, spikingjelly_network

    from fastsnn_mm import convert_to_snn
    net = build(16, 3).to(device)
    x = torch.randn(4, 3, 32, 32, device=device)
    with torch.no_grad():
        for T in timesteps:
            ours = convert_to_snn(net, timesteps=T, neuron='unsigned')
            run_spikingjelly(spikingjelly_network(ours.module), x, T)
            for node in spikingjelly_nodes(1.0, device).values():
                node.reset()
                node(torch.randn(T, 2, 16, 8, 8, device=device))


def warm_neuron(device, T):
    from bench_neuron import compiled_reference
    th = torch.tensor([1.0], device=device)
    x = torch.randn(T, *NEURON_SHAPE, device=device)
    with torch.no_grad():
        compiled_reference(th, T)(x)


def _task(name, device, timesteps):
    """One warm-up in a fresh process: (name, seconds, error or None)."""
    from core_import import import_core
    t0 = time.perf_counter()
    try:
        import_core()
        if name == 'snn':
            warm_snn(device)
        elif name == 'qat':
            warm_qat(device)
        elif name == 'spikingjelly':
            warm_spikingjelly(device, timesteps)
        else:
            warm_neuron(device, int(name.split('-')[1]))
        if torch.device(device).type == 'cuda':
            torch.cuda.synchronize()
        error = None
    except Exception as err:  # reported; the benchmark will meet it again
        error = f'{type(err).__name__}: {err}'.splitlines()[0]
    return name, time.perf_counter() - t0, error


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    p.add_argument('--timesteps', type=int, nargs='*', default=[3, 7, 15],
                   help='T of bench_neuron\'s compiled loop (none: skip it)')
    p.add_argument('--no-compile', dest='compile', action='store_false',
                   help='leave out torch.compile (as bench_neuron '
                   '--no-compile)')
    args = p.parse_args(argv)
    tasks = ['snn', 'qat', 'spikingjelly']
    if args.compile:
        tasks += [f'neuron-{T}' for T in args.timesteps]
    # spawn: CUDA cannot be used in a forked child of a CUDA process
    ctx = multiprocessing.get_context('spawn')
    with ctx.Pool(len(tasks)) as pool:
        results = pool.starmap(_task, [(t, args.device, args.timesteps)
                                       for t in tasks])
    failed = 0
    for name, seconds, error in results:
        print(f'warm {name:<12} {seconds:6.1f} s  '
              f'{"ok" if error is None else "FAILED: " + error}')
        failed += error is not None
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
