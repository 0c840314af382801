"""The Triton IF kernel against the reference loop, bit for bit, on CPU
tensors through Triton's interpreter.

Triton reads ``TRITON_INTERPRET`` when it is imported, so the cases run in
one child process started with it set (this file run as a script); each
test below checks one case's verdict.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)

DTYPES = {'float32': torch.float32, 'float16': torch.float16,
          'bfloat16': torch.bfloat16, 'float64': torch.float64}


def fresh_cases():
    """(name, dtype, signed, constant, T): every combination the folded
    path meets, T = 1 (one step), 3, 7 and 130 (an int32 count)."""
    for dtype in DTYPES:
        for signed in (True, False):
            for constant in (True, False):
                for T in (1, 3, 7, 130):
                    if T == 130 and dtype != 'float32':
                        continue
                    kind = 'signed' if signed else 'unsigned'
                    const = 'constant' if constant else 'per-step'
                    yield (f'fresh-{dtype}-{kind}-{const}-T{T}', dtype,
                           signed, constant, T)


def stateful_cases():
    for dtype in ('float32', 'float16', 'bfloat16'):
        for signed in (True, False):
            for T in (5, 130):
                if T == 130 and dtype != 'float32':
                    continue
                kind = 'signed' if signed else 'unsigned'
                yield f'stateful-{dtype}-{kind}-T{T}', dtype, signed, T


OTHER_CASES = ['in-place-folded', 'in-place-stateful', 'stateful-constant',
               'dispatch-picks-triton', 'network-folded', 'network-chunks',
               'network-streaming', 'network-in-place-hooks']


def case_names():
    return ([c[0] for c in fresh_cases()] + [c[0] for c in stateful_cases()]
            + OTHER_CASES)


# -- the child process ------------------------------------------------------

def _inputs(shape, dtype, seed, theta=0.7, steps=False):
    """Random inputs with exact zeros and threshold hits; with ``steps``
    ([T, ...] inputs) the first elements fire at step 0 and then sink just
    below or above the signed rule's margin (-1e-6 theta) at step 1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 0.6
    x.view(-1)[::97] = 0.0
    x.view(-1)[5::89] = theta
    if steps and shape[0] > 1:
        sinks = torch.tensor([0.0, -2e-7, -5e-7, -9e-7, -2e-6, -1e-5]) * theta
        first, second = x[0].view(-1), x[1].view(-1)
        first[:len(sinks)] = theta / 2  # V = theta: one spike, V = 0
        second[:len(sinks)] = sinks
    return x.to(DTYPES[dtype])


def _fresh(dtype, signed, constant, T):
    from fastsnn_mm.spiking import triton_if
    from fastsnn_mm.spiking.functional import NEG_EPS, if_loop
    # 2 x 3 x 17 x 19 = 1938 elements: not a multiple of the block
    shape = (2, 3, 17, 19) if constant else (T, 2, 3, 17, 19)
    x = _inputs(shape, dtype, T, steps=not constant)
    theta = torch.tensor([0.7], dtype=DTYPES[dtype])
    ref = if_loop(x, theta, signed, constant, T) * theta
    out = triton_if.if_folded(x, theta, signed, constant, T, NEG_EPS)
    return torch.equal(ref, out) and ref.dtype == out.dtype


def _stateful(dtype, signed, T):
    from fastsnn_mm.spiking import triton_if
    from fastsnn_mm.spiking.functional import NEG_EPS, if_step, new_state
    x = _inputs((T, 3, 333), dtype, 1, 0.9, steps=True)
    theta = torch.tensor([0.9], dtype=DTYPES[dtype])
    v1, c1 = new_state(x[0], theta, signed, T)
    v2, c2 = new_state(x[0], theta, signed, T)
    t, same = 0, True
    for steps in (1, 3, 1, T):  # uneven chunks, as the runner presents them
        steps = min(steps, T - t)
        if steps <= 0:
            break
        ref = torch.stack([if_step(v1, c1, x[t + i], theta, signed) * theta
                           for i in range(steps)])
        out = triton_if.if_stateful(v2, c2, x[t:t + steps].contiguous(),
                                    theta, signed, False, steps, NEG_EPS)
        same &= torch.equal(ref, out) and torch.equal(v1, v2)
        if signed:
            same &= torch.equal(c1, c2)
        t += steps
    return same


def _in_place_folded():
    from fastsnn_mm.spiking import triton_if
    from fastsnn_mm.spiking.functional import NEG_EPS, if_loop
    x = _inputs((4, 3, 1000), 'float32', 2, 0.8, steps=True)
    theta = torch.tensor([0.8])
    ok = True
    for signed in (True, False):
        ref = if_loop(x, theta, signed, False, 4) * theta
        y = x.clone()
        out = triton_if.if_folded(y, theta, signed, False, 4, NEG_EPS, True)
        ok &= out.data_ptr() == y.data_ptr() and torch.equal(out, ref)
    return ok


def _in_place_stateful():
    from fastsnn_mm.spiking import triton_if
    from fastsnn_mm.spiking.functional import NEG_EPS, new_state
    x = _inputs((4, 3, 1000), 'float32', 3, 0.8, steps=True)
    theta = torch.tensor([0.8])
    ok = True
    for signed in (True, False):
        v1, c1 = new_state(x[0], theta, signed, 4)
        v2, c2 = new_state(x[0], theta, signed, 4)
        y = x.clone()
        a = triton_if.if_stateful(v1, c1, x, theta, signed, False, 4,
                                  NEG_EPS)
        b = triton_if.if_stateful(v2, c2, y, theta, signed, False, 4,
                                  NEG_EPS, True)
        ok &= b.data_ptr() == y.data_ptr() and torch.equal(a, b)
        ok &= torch.equal(v1, v2)
    return ok


def _stateful_constant():
    """Chunks of a constant input (the layers before ran once)."""
    from fastsnn_mm.spiking import triton_if
    from fastsnn_mm.spiking.functional import NEG_EPS, if_step, new_state
    x = _inputs((3, 500), 'float32', 4)
    theta = torch.tensor([0.6])
    ok = True
    for signed in (True, False):
        v1, c1 = new_state(x, theta, signed, 7)
        v2, c2 = new_state(x, theta, signed, 7)
        for steps in (2, 1, 4):
            ref = torch.stack([if_step(v1, c1, x, theta, signed) * theta
                               for _ in range(steps)])
            out = triton_if.if_stateful(v2, c2, x, theta, signed, True,
                                        steps, NEG_EPS)
            ok &= torch.equal(ref, out) and torch.equal(v1, v2)
    return ok


def _dispatch():
    from fastsnn_mm.spiking.functional import backend_for
    x, theta = torch.zeros(3, 4), torch.ones(1)
    return backend_for(x, theta) == 'triton'


def _network(mode, time_chunk=None, hooks=False):
    """A converted QResNet through the neurons: Triton (counted) against
    the reference loop."""
    from fastsnn_mm import convert_to_snn
    from fastsnn_mm.spiking import triton_if
    from test_converter import SmallResNet, randomised
    calls = []
    launch = triton_if._launch

    def counted(*args, **kwargs):
        calls.append(1)
        return launch(*args, **kwargs)
    triton_if._launch = counted
    net = randomised(SmallResNet(bits=3))
    x = torch.randn(2, 3, 16, 16)
    snn = convert_to_snn(net, mode=mode, time_chunk=time_chunk)
    if hooks:  # a hook reading the input keeps it intact (no in-place)
        seen = []
        first = snn.module.backbone.layer1[0].act1
        first.register_forward_hook(
            lambda m, i, o: seen.append(i[0] is not o))
    with torch.no_grad():
        fast = snn(x)
        os.environ['FASTSNN_IF_KERNEL'] = '0'
        try:
            slow = snn(x)
        finally:
            os.environ['FASTSNN_IF_KERNEL'] = 'triton'
    triton_if._launch = launch
    return bool(calls) and torch.equal(fast, slow) and \
        (not hooks or all(seen))


def run_cases():
    os.environ['FASTSNN_IF_KERNEL'] = 'triton'
    torch.set_num_threads(1)
    results = {}

    def record(name, fn, *args):
        try:
            results[name] = bool(fn(*args))
        except Exception as e:  # reported by the test that owns the case
            results[name] = f'{type(e).__name__}: {e}'
    for name, *args in fresh_cases():
        record(name, _fresh, *args)
    for name, *args in stateful_cases():
        record(name, _stateful, *args)
    record('in-place-folded', _in_place_folded)
    record('in-place-stateful', _in_place_stateful)
    record('stateful-constant', _stateful_constant)
    record('dispatch-picks-triton', _dispatch)
    record('network-folded', _network, 'folded', 7)
    record('network-chunks', _network, 'folded', 3)
    record('network-streaming', _network, 'streaming')
    record('network-in-place-hooks', _network, 'folded', 7, True)
    return results


# -- the tests ---------------------------------------------------------------

@pytest.fixture(scope='module')
def verdicts():
    pytest.importorskip('triton')
    env = dict(os.environ, TRITON_INTERPRET='1',
               PYTHONPATH=os.pathsep.join(
                   [REPO, HERE, os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run([sys.executable, __file__], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('case', case_names())
def test_triton_kernel_equals_reference(verdicts, case):
    assert verdicts[case] is True, verdicts[case]


if __name__ == '__main__':
    assert os.environ.get('TRITON_INTERPRET') == '1'
    print(json.dumps(run_cases()))
