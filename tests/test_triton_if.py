"""The Triton IF kernel against the reference loop, bit for bit: on CPU
tensors through Triton's interpreter, and on a GPU where one is present.

Triton reads ``TRITON_INTERPRET`` when it is imported, so the interpreter
cases run in one child process started with it set (this file run as a
script); each test below checks one case's verdict. On CUDA the same cases
run in this process, with longer runs (T up to 255, an int32 count, in
every floating dtype). Sizes are never a multiple of the kernel's block
(1024 elements), so every launch ends in a partial block.
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

#: T of the fresh and stateful runs, and the dtypes that run T > 127 (the
#: interpreter is slow; a GPU is not)
RUNS = {'cpu': dict(fresh=(1, 3, 7, 130), stateful=(5, 130),
                    long=('float32', )),
        'cuda': dict(fresh=(1, 3, 7, 130, 255), stateful=(5, 130, 255),
                     long=tuple(DTYPES))}


def fresh_cases(device='cpu'):
    """(name, dtype, signed, constant, T): every combination the folded
    path meets, T = 1 (one step), 3, 7 and past 127 (an int32 count)."""
    runs = RUNS[device]
    for dtype in DTYPES:
        for signed in (True, False):
            for constant in (True, False):
                for T in runs['fresh']:
                    if T > 127 and dtype not in runs['long']:
                        continue
                    kind = 'signed' if signed else 'unsigned'
                    const = 'constant' if constant else 'per-step'
                    yield (f'fresh-{dtype}-{kind}-{const}-T{T}', dtype,
                           signed, constant, T)


def stateful_cases(device='cpu'):
    runs = RUNS[device]
    for dtype in ('float32', 'float16', 'bfloat16'):
        for signed in (True, False):
            for T in runs['stateful']:
                if T > 127 and dtype not in runs['long']:
                    continue
                kind = 'signed' if signed else 'unsigned'
                yield f'stateful-{dtype}-{kind}-T{T}', dtype, signed, T


OTHER_CASES = ['in-place-folded', 'in-place-stateful',
               'stateful-constant-float32', 'stateful-constant-float16',
               'stateful-constant-bfloat16', 'strided-input',
               'no-fp-contraction', 'dispatch-picks-triton',
               'network-folded', 'network-chunks', 'network-streaming',
               'network-in-place-hooks', 'codes', 'channels-last-state']


def case_names(device='cpu'):
    return ([c[0] for c in fresh_cases(device)]
            + [c[0] for c in stateful_cases(device)] + OTHER_CASES)


# -- the cases (run in the child process, or on CUDA in this one) -----------

def _inputs(shape, dtype, seed, theta=0.7, steps=False, device='cpu'):
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
    return x.to(device=device, dtype=DTYPES[dtype])


def _theta(value, dtype, device):
    return torch.tensor([value], dtype=DTYPES[dtype], device=device)


def _fresh(dtype, signed, constant, T, device='cpu'):
    from fastsnn_mm.spiking import triton_if
    from fastsnn_mm.spiking.functional import if_loop, neg_threshold
    # 2 x 3 x 17 x 19 = 1938 elements: not a multiple of the block
    shape = (2, 3, 17, 19) if constant else (T, 2, 3, 17, 19)
    x = _inputs(shape, dtype, T, steps=not constant, device=device)
    theta = _theta(0.7, dtype, device)
    ref = if_loop(x, theta, signed, constant, T) * theta
    out, _ = triton_if.if_folded(x, theta, signed, constant, T,
                              neg_threshold(theta))
    # elementwise: the kernel repeats the reference's operations
    return torch.equal(ref, out) and ref.dtype == out.dtype


def _stateful(dtype, signed, T, device='cpu'):
    from fastsnn_mm.spiking import triton_if
    from fastsnn_mm.spiking.functional import if_step, neg_threshold, new_state
    x = _inputs((T, 3, 333), dtype, 1, 0.9, steps=True, device=device)
    theta = _theta(0.9, dtype, device)
    v1, c1 = new_state(x[0], theta, signed, T)
    v2, c2 = new_state(x[0], theta, signed, T)
    t, same = 0, True
    for steps in (1, 3, 1, T):  # uneven chunks, as the runner presents them
        steps = min(steps, T - t)
        if steps <= 0:
            break
        ref = torch.stack([if_step(v1, c1, x[t + i], theta, signed) * theta
                           for i in range(steps)])
        out, _ = triton_if.if_stateful(v2, c2, x[t:t + steps].contiguous(),
                                    theta, signed, False, steps,
                                    neg_threshold(theta))
        # elementwise, in order: the same bits (counts: integers)
        same &= torch.equal(ref, out) and torch.equal(v1, v2)
        if signed:
            same &= torch.equal(c1, c2)
        t += steps
    return same


def _in_place_folded(device='cpu'):
    from fastsnn_mm.spiking import triton_if
    from fastsnn_mm.spiking.functional import if_loop, neg_threshold
    x = _inputs((4, 3, 1000), 'float32', 2, 0.8, steps=True, device=device)
    theta = _theta(0.8, 'float32', device)
    ok = True
    for signed in (True, False):
        ref = if_loop(x, theta, signed, False, 4) * theta
        y = x.clone()
        out, _ = triton_if.if_folded(y, theta, signed, False, 4,
                                  neg_threshold(theta), True)
        # elementwise: in place or not, the same bits
        ok &= out.data_ptr() == y.data_ptr() and torch.equal(out, ref)
    return ok


def _in_place_stateful(device='cpu'):
    from fastsnn_mm.spiking import triton_if
    from fastsnn_mm.spiking.functional import neg_threshold, new_state
    x = _inputs((4, 3, 1000), 'float32', 3, 0.8, steps=True, device=device)
    theta = _theta(0.8, 'float32', device)
    ok = True
    for signed in (True, False):
        v1, c1 = new_state(x[0], theta, signed, 4)
        v2, c2 = new_state(x[0], theta, signed, 4)
        y = x.clone()
        a, _ = triton_if.if_stateful(v1, c1, x, theta, signed, False, 4,
                                  neg_threshold(theta))
        b, _ = triton_if.if_stateful(v2, c2, y, theta, signed, False, 4,
                                  neg_threshold(theta), True)
        # elementwise: in place or not, the same bits
        ok &= b.data_ptr() == y.data_ptr() and torch.equal(a, b)
        ok &= torch.equal(v1, v2)
    return ok


def _stateful_constant(dtype, device='cpu'):
    """Chunks of a constant input (the layers before ran once)."""
    from fastsnn_mm.spiking import triton_if
    from fastsnn_mm.spiking.functional import if_step, neg_threshold, new_state
    x = _inputs((3, 500), dtype, 4, device=device)
    theta = _theta(0.6, dtype, device)
    ok = True
    for signed in (True, False):
        v1, c1 = new_state(x, theta, signed, 7)
        v2, c2 = new_state(x, theta, signed, 7)
        for steps in (2, 1, 4):
            ref = torch.stack([if_step(v1, c1, x, theta, signed) * theta
                               for _ in range(steps)])
            out, _ = triton_if.if_stateful(v2, c2, x, theta, signed, True,
                                        steps, neg_threshold(theta))
            # elementwise, in order: the same bits (counts: integers)
            ok &= torch.equal(ref, out) and torch.equal(v1, v2)
            if signed:
                ok &= torch.equal(c1, c2)
    return ok


def _counting_launches():
    """Replace ``triton_if._launch`` by a counting one; returns (calls,
    undo)."""
    from fastsnn_mm.spiking import triton_if
    calls, launch = [], triton_if._launch

    def counted(*args, **kwargs):
        calls.append(1)
        return launch(*args, **kwargs)
    triton_if._launch = counted
    return calls, lambda: setattr(triton_if, '_launch', launch)


def _strided(device='cpu'):
    """A channels_last input, [T*B, C, H, W] viewed as [T, B, ...], is not
    contiguous: it takes the kernel all the same (walked as it is)."""
    from fastsnn_mm.spiking.functional import (
        backend_for,
        if_folded,
        if_loop,
        if_stateful,
        new_state,
    )
    x = _inputs((6, 5, 9, 11), 'float32', 5, device=device)
    x = x.to(memory_format=torch.channels_last)
    steps = x.reshape(3, 2, *x.shape[1:])
    theta = _theta(0.7, 'float32', device)
    ok = not steps.is_contiguous() and backend_for(steps, theta) == 'triton'
    calls, undo = _counting_launches()
    try:
        ref = if_loop(steps, theta, True, False, 3) * theta
        # elementwise: the same operations in any dense layout
        ok &= torch.equal(if_folded(steps, theta, True, False, 3), ref)
        v, c = new_state(steps[0], theta, True, 3)
        ok &= torch.equal(if_stateful(v, c, steps, theta, True, False, 3),
                          ref)
    finally:
        undo()
    return ok and len(calls) == 2


def _codes(device='cpu'):
    """The reader's codes written beside the output (spiking/spike_codes):
    the reader's own conversion of it, bit for bit, in every form and
    rule, folded and stateful, with the output's bits unchanged."""
    from fastsnn_mm.spiking.functional import (
        backend_for,
        if_folded,
        if_stateful,
        new_state,
    )
    from fastsnn_mm.spiking.spike_codes import (
        SHIFTED,
        SIGN,
        UNIT,
        SpikeCodes,
        codes_of,
    )
    forms = [SpikeCodes(SHIFTED, torch.uint8),
             SpikeCodes(UNIT, torch.bfloat16),
             SpikeCodes(SIGN, torch.float32), SpikeCodes(SIGN, torch.int8)]
    x = _inputs((4, 2, 3, 17, 19), 'float32', 7, steps=True, device=device)
    theta = _theta(0.7, 'float32', device)
    ok = backend_for(x, theta) == 'triton'
    for form in forms:
        for rule in ('signed', 'unsigned'):
            plain = if_folded(x, theta, rule, False, 4)
            out = if_folded(x, theta, rule, False, 4, codes=form)
            ok &= torch.equal(out, plain)
            ok &= torch.equal(codes_of(out, form), form.convert(out))
            v, c = new_state(x[0], theta, rule, 4)
            for t in (0, 2):
                part = if_stateful(v, c, x[t:t + 2], theta, rule, False, 2,
                                   codes=form)
                ok &= torch.equal(codes_of(part, form), form.convert(part))
    return bool(ok)


def _channels_last_state(device='cpu'):
    """A channels-last input keeps its layout through the kernel (output
    and state), with the contiguous run's bits."""
    from fastsnn_mm.spiking.functional import if_folded, if_stateful, new_state
    x = _inputs((8, 5, 9, 11), 'float32', 5, device=device)
    theta = _theta(0.7, 'float32', device)
    plain = x.reshape(4, 2, *x.shape[1:])
    cl = x.to(memory_format=torch.channels_last).reshape(plain.shape)
    ref = if_folded(plain, theta, True, False, 4)
    out = if_folded(cl, theta, True, False, 4)
    ok = torch.equal(out, ref) and out.stride() == cl.stride()
    v, c = new_state(cl[0], theta, True, 4)
    ok &= v.stride() == cl[0].stride()
    got = torch.cat([if_stateful(v, c, cl[t:t + 2], theta, True, False, 2)
                     for t in (0, 2)])
    return bool(ok and torch.equal(got, ref))


def _no_fp_contraction(device='cpu'):
    """The kernel is compiled without fused multiply-adds."""
    from fastsnn_mm.spiking import triton_if
    kernel, options = triton_if.if_steps_kernel, {}

    class Spy:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                options.update(kwargs)
                return kernel[grid](*args, **kwargs)
            return launch
    triton_if.if_steps_kernel = Spy()
    try:
        ok = _fresh('float32', True, False, 3, device)
    finally:
        triton_if.if_steps_kernel = kernel
    return ok and options.get('enable_fp_fusion') is False


def _dispatch(device='cpu'):
    from fastsnn_mm.spiking.functional import backend_for
    x, theta = torch.zeros(3, 4, device=device), torch.ones(1, device=device)
    return backend_for(x, theta) == 'triton'


def _network(mode, time_chunk=None, hooks=False, device='cpu'):
    """A converted QResNet through the neurons: Triton (counted) against
    the reference loop."""
    from test_converter import SmallResNet, randomised

    from fastsnn_mm import convert_to_snn
    calls, undo = _counting_launches()
    net = randomised(SmallResNet(bits=3))
    x = torch.randn(2, 3, 16, 16, device=device)
    snn = convert_to_snn(net, mode=mode, time_chunk=time_chunk).to(device)
    if hooks:  # a hook reading the input keeps it intact (no in-place)
        seen = []
        first = snn.module.backbone.layer1[0].act1
        first.register_forward_hook(
            lambda m, i, o: seen.append(i[0] is not o))
    before = os.environ.get('FASTSNN_IF_KERNEL')
    try:
        with torch.no_grad():
            fast = snn(x)
            os.environ['FASTSNN_IF_KERNEL'] = '0'
            slow = snn(x)
    finally:
        undo()
        if before is None:
            os.environ.pop('FASTSNN_IF_KERNEL', None)
        else:
            os.environ['FASTSNN_IF_KERNEL'] = before
    # same plan and batch: the same sums; neurons elementwise
    return bool(calls) and torch.equal(fast, slow) and \
        (not hooks or all(seen))


def run_cases(device='cpu'):
    """{case name: True, False or the error it raised} on ``device``."""
    results = {}

    def record(name, fn, *args):
        try:
            results[name] = bool(fn(*args, device=device))
        except Exception as e:  # reported by the test that owns the case
            results[name] = f'{type(e).__name__}: {e}'
    for name, *args in fresh_cases(device):
        record(name, _fresh, *args)
    for name, *args in stateful_cases(device):
        record(name, _stateful, *args)
    record('in-place-folded', _in_place_folded)
    record('in-place-stateful', _in_place_stateful)
    for dtype in ('float32', 'float16', 'bfloat16'):
        record(f'stateful-constant-{dtype}', _stateful_constant, dtype)
    record('strided-input', _strided)
    record('no-fp-contraction', _no_fp_contraction)
    record('dispatch-picks-triton', _dispatch)
    record('network-folded', _network, 'folded', 7)
    record('network-chunks', _network, 'folded', 3)
    record('network-streaming', _network, 'streaming')
    record('network-in-place-hooks', _network, 'folded', 7, True)
    record('codes', _codes)
    record('channels-last-state', _channels_last_state)
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


@pytest.fixture(scope='module')
def cuda_verdicts():
    """The cases on the GPU, with cuDNN's deterministic algorithms and no
    TF32 (restored after), as the bit-for-bit claims need."""
    flags = (torch.backends.cudnn.deterministic,
             torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield run_cases('cuda')
    finally:
        (torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = flags


@pytest.mark.cuda
@pytest.mark.parametrize('case', case_names('cuda'))
def test_triton_kernel_equals_reference_on_cuda(cuda_verdicts, case):
    assert cuda_verdicts[case] is True, cuda_verdicts[case]


if __name__ == '__main__':
    assert os.environ.get('TRITON_INTERPRET') == '1'
    os.environ['FASTSNN_IF_KERNEL'] = 'triton'
    torch.set_num_threads(1)
    print(json.dumps(run_cases('cpu')))
