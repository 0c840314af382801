"""QuantReLU's fused Triton kernels and its float32 levels under autocast.

The kernels are checked bit for bit against the torch path on CPU tensors
through Triton's interpreter (a subprocess: TRITON_INTERPRET must be set
before Triton is imported), and on CUDA where a GPU is present.
"""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from fastsnn_mm.quantization import QuantReLU
from fastsnn_mm.quantization.quant_relu import _QuantReLUFn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reference(x, alpha, levels):
    """The QuantReLU formula and PACT gradients as written before the
    float32 change (float32 inputs): the tests' fixed point."""
    a = alpha.abs().clamp_min(1e-8)
    q = torch.floor(torch.clamp(x / a, 0, 1) * levels + 0.5) * (a / levels)
    inside = (x >= 0) & (x <= a)
    d_alpha = torch.where(inside, (q - x) / a, (x > a).to(x.dtype))
    return q, a, inside, d_alpha


def hard_inputs(levels, alpha=1.37, shape=(2, 3, 9, 11), seed=0):
    """Random values plus the awkward ones: exact level ties, 0, alpha,
    just outside [0, alpha], large magnitudes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g) * 2
    flat = x.view(-1)
    ties = (torch.arange(2 * levels + 1) * 0.5 / levels * alpha).float()
    special = torch.tensor([0.0, -0.0, alpha, alpha * 1.0000001, -1e-30,
                            1e30, -1e30])
    flat[:len(ties)] = ties
    flat[len(ties):len(ties) + len(special)] = special
    return x


def test_float32_path_unchanged():
    for bits in (1, 2, 3, 4, 8):
        levels = 2 ** bits - 1
        x = hard_inputs(levels).requires_grad_()
        m = QuantReLU(bits=bits, alpha=1.37)
        q = m(x)
        g = torch.randn_like(q)
        q.backward(g)
        rq, ra, inside, d_alpha = reference(x.detach(), m.alpha.detach(),
                                            levels)
        assert q.dtype == torch.float32
        # elementwise, the same operations: the same bits
        assert torch.equal(q, rq)
        assert torch.equal(x.grad, g * inside.float())
        # the same torch sum on the same tensor as the backward's
        assert torch.equal(m.alpha.grad, (g * d_alpha).sum().reshape(1))


def test_float64_model_stays_float64():
    m = QuantReLU(bits=3, alpha=1.37).double()
    x = hard_inputs(7).double()
    q = m(x)
    assert q.dtype == torch.float64
    # elementwise, the same operations: the same bits
    assert torch.equal(q, reference(x, m.alpha.detach(), 7)[0])


def test_autocast_bfloat16_levels_exact_and_loss_finite():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1),
                              QuantReLU(bits=3, alpha=1.3),
                              torch.nn.Conv2d(8, 4, 3, padding=1))
    x = torch.randn(2, 3, 12, 12)
    seen = {}
    net[1].register_forward_hook(
        lambda mod, inp, out: seen.update(inp=inp[0], out=out))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = net(x).float().square().mean()
    q, conv_out = seen['out'], seen['inp']
    assert conv_out.dtype == torch.bfloat16  # autocast did reach the conv
    assert q.dtype == torch.float32
    a = net[1].alpha.detach()
    step = a / 7
    k = torch.floor(torch.clamp(conv_out.float() / a, 0, 1) * 7 + 0.5)
    # elementwise recomputation of the same levels
    assert torch.equal(q, k * step)  # every value exactly k * alpha / 7
    assert ((k >= 0) & (k <= 7)).all() and len(k.unique()) > 3
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(net[1].alpha.grad).all()
    assert net[0].weight.grad.dtype == torch.float32


def test_bfloat16_input_gradients_match_float32_arithmetic():
    x = hard_inputs(7).to(torch.bfloat16).requires_grad_()
    alpha = torch.tensor([1.37], requires_grad=True)
    q = _QuantReLUFn.apply(x, alpha, 7)
    g = torch.randn(q.shape)
    q.backward(g)
    rq, _, inside, d_alpha = reference(x.detach().float(), alpha.detach(), 7)
    # elementwise, the same operations: the same bits
    assert torch.equal(q, rq)
    assert x.grad.dtype == torch.bfloat16
    assert torch.equal(x.grad, (g * inside.float()).to(torch.bfloat16))
    assert torch.allclose(alpha.grad, (g * d_alpha).sum().reshape(1))


INTERPRETER_SCRIPT = textwrap.dedent('''
    import torch
    import fastsnn_mm.quantization.quant_relu_triton as k
    from fastsnn_mm.quantization.quant_relu import _QuantReLUFn
    {helpers}
    failures = []

    def check(name, x, alpha, levels, recip=False, out_dtype=None):
        if recip:  # the CUDA rule for alpha / levels, on CPU tensors
            k._scalars = lambda lv, dev: (float(lv), orig(lv, dev)[1], True)
        try:
            q = k.quant_relu_forward(x, alpha, levels)
            g = torch.randn(q.shape, dtype=q.dtype)
            gx, ga = k.quant_relu_backward(x, g, alpha, levels)
        finally:
            k._scalars = orig
        if recip:
            a = alpha.abs().clamp_min(1e-8)
            step = a * torch.tensor(1.0 / levels, dtype=torch.float32)
            y = torch.clamp(x.float() / a, 0, 1)
            rq = torch.floor(y * levels + 0.5) * step
        else:
            xr = x.detach().clone().requires_grad_()
            ar = alpha.detach().clone().requires_grad_()
            rq = _QuantReLUFn.apply(xr, ar, levels)
            rq.backward(g)
            if x.dtype == torch.float32:
                # elementwise: the same bits
                same = torch.equal(gx, xr.grad)
            else:  # the interpreter's own float32 -> bfloat16 cast rounds
                # otherwise than the GPU's (round to nearest even, as
                # torch): within one bfloat16 step here, exact on CUDA
                step = xr.grad.float().abs() * 2 ** -7
                same = bool(((gx.float() - xr.grad.float()).abs()
                             <= step).all())
            if not same:
                failures.append(f'{{name}}: grad_x differs')
            if gx.dtype != x.dtype:
                failures.append(f'{{name}}: grad_x dtype')
            if not torch.allclose(ga, ar.grad, rtol=1e-5, atol=1e-5):
                failures.append(f'{{name}}: grad_alpha {{ga}} vs {{ar.grad}}')
        # elementwise: the same bits
        if q.dtype != rq.dtype or not torch.equal(q, rq):
            failures.append(f'{{name}}: forward differs')

    orig = k._scalars
    for bits in (1, 2, 3, 4, 8):
        L = 2 ** bits - 1
        x = hard_inputs(L, seed=bits)
        alpha = torch.tensor([1.37])
        check(f'{{bits}} bit', x, alpha, L)
        check(f'{{bits}} bit, CUDA rounding of alpha/L', x, alpha, L, True)
    x = hard_inputs(7)
    check('negative alpha', x, torch.tensor([-0.9]), 7)
    check('bfloat16 input', x.to(torch.bfloat16), torch.tensor([1.37]), 7)
    xc = x.to(memory_format=torch.channels_last)
    check('channels last', xc, torch.tensor([1.37]), 7)
    if not k.quant_relu_forward(xc, torch.tensor([1.0]), 7).is_contiguous(
            memory_format=torch.channels_last):
        failures.append('channels last: output not channels last')
    check('strided input', hard_inputs(7, shape=(2, 3, 9, 22))[..., ::2],
          torch.tensor([1.37]), 7)
    check('more than one block', torch.randn(3, 1000), torch.tensor([0.8]), 3)
    check('empty', torch.randn(0, 4), torch.tensor([0.8]), 3)
    # a NaN clip: NaN levels as torch's clamp_min keeps it, not a 1e-8 clip
    nan = torch.tensor([float('nan')])
    qn = k.quant_relu_forward(x, nan, 7)
    if not (torch.isnan(qn).all() and
            torch.isnan(_QuantReLUFn.apply(x, nan, 7)).all()):
        failures.append('NaN alpha: forward is not NaN as in torch')
    g = torch.randn(x.shape)
    gx, ga = k.quant_relu_backward(x, g, nan, 7)
    xr, ar = x.clone().requires_grad_(), nan.clone().requires_grad_()
    _QuantReLUFn.apply(xr, ar, 7).backward(g)
    # NaN alpha: zero gradients everywhere, exact in any order
    if not (torch.equal(gx, xr.grad) and torch.equal(ga, ar.grad)):
        failures.append('NaN alpha: gradients differ from torch')
    print('FAILURES:', failures)
    assert not failures, failures
    print('OK')
''')


def test_triton_kernels_match_torch_path_in_interpreter():
    pytest.importorskip('triton')
    import inspect
    helpers = inspect.getsource(hard_inputs)
    script = INTERPRETER_SCRIPT.format(helpers=helpers)
    env = dict(os.environ, TRITON_INTERPRET='1', PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, '-c', script], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and 'OK' in out.stdout, \
        out.stdout[-3000:] + out.stderr[-3000:]


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_cuda_kernel_matches_torch_path(dtype, monkeypatch):
    torch.manual_seed(0)
    for bits in (2, 3, 4):
        L = 2 ** bits - 1
        x = hard_inputs(L).cuda().to(dtype)
        g = torch.randn(x.shape, device='cuda')
        grads = {}
        for kernel in ('1', '0'):
            monkeypatch.setenv('FASTSNN_QUANT_RELU_KERNEL', kernel)
            m = QuantReLU(bits=bits, alpha=1.37).cuda()
            xi = x.clone().requires_grad_()
            q = m(xi)
            q.backward(g)
            grads[kernel] = (q, xi.grad, m.alpha.grad)
        (q1, gx1, ga1), (q0, gx0, ga0) = grads['1'], grads['0']
        assert q1.dtype == q0.dtype == torch.float32
        # elementwise kernels on one device: the same bits
        assert torch.equal(q1, q0)
        assert torch.equal(gx1, gx0) and gx1.dtype == dtype
        assert torch.allclose(ga1, ga0, rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_cuda_nan_alpha_gives_nan_as_torch(monkeypatch):
    x = hard_inputs(7).cuda()
    alpha = torch.tensor([float('nan')], device='cuda')
    outs = {}
    for kernel in ('1', '0'):
        monkeypatch.setenv('FASTSNN_QUANT_RELU_KERNEL', kernel)
        from fastsnn_mm.quantization.quant_relu import quant_relu
        outs[kernel] = quant_relu(x, alpha, 7)
    assert torch.isnan(outs['1']).all() and torch.isnan(outs['0']).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_cuda_autocast_train_step_finite():
    from fastsnn_mm.models.backbones import QResNet
    torch.manual_seed(0)
    net = QResNet(depth=18, base_channels=16,
                  act_cfg=dict(type='QuantReLU', bits=3)).cuda()
    x = torch.randn(4, 3, 32, 32, device='cuda')
    with torch.autocast('cuda', dtype=torch.bfloat16):
        loss = net(x)[-1].float().square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    alphas = [m.alpha.grad for m in net.modules() if isinstance(m, QuantReLU)]
    assert alphas and all(torch.isfinite(a).all() for a in alphas)
