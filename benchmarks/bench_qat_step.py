"""Train-step time of a QAT model against the same model in full precision.

QAT adds QuantReLU's elementwise work (and optional weight fake-quantization)
to every step; this measures what that costs on the same batch, interleaving
the two models so machine load affects both alike.

On CUDA (``--device cuda``) steps are timed with CUDA events, and a third
model runs QuantReLU's pure-torch path (``FASTSNN_QUANT_RELU_KERNEL=0``)
beside the fused Triton kernels. ``--amp`` times every model a second time
under ``torch.autocast`` (bfloat16). The table also goes to
benchmarks/RESULTS.md (``--results``).

    python benchmarks/bench_qat_step.py --arch resnet18 --batch 32 --bits 3
    python benchmarks/bench_qat_step.py --device cuda --size 32 --batch 128 \
        --amp
"""
import argparse
import contextlib
import copy
import os
import statistics
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from core_import import import_core  # noqa: E402
from results import add_results_arg, environment, record  # noqa: E402
from timing import Timer  # noqa: E402

import_core()
from fastsnn_mm.models.backbones import QVGG, QResNet  # noqa: E402
from fastsnn_mm.quantization import quantize_model  # noqa: E402


def build(arch, width, num_classes=10):
    if arch == 'resnet18':
        backbone = QResNet(depth=18, base_channels=width,
                           act_cfg=dict(type='ReLU'))
    elif arch == 'vgg11':
        backbone = QVGG('vgg11', base_channels=width,
                        act_cfg=dict(type='ReLU'))
    else:
        raise ValueError(f'unknown arch {arch!r} (resnet18 or vgg11)')
    channels = backbone.out_channels[-1]

    class Net(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.fc = nn.Linear(channels, num_classes)

        def forward(self, x):
            return self.fc(self.backbone(x)[-1].mean((2, 3)))

    return Net()


@contextlib.contextmanager
def env_var(name, value):
    """Set an environment variable for the block (None: leave it)."""
    before = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if value is not None:
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before


def step_fn(model, x, y, amp=False, quant_kernel=None):
    """One SGD train step; ``amp``: forward under bfloat16 autocast;
    ``quant_kernel='0'``: QuantReLU's torch path instead of its kernel."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    autocast = (lambda: torch.autocast(x.device.type, dtype=torch.bfloat16)) \
        if amp else contextlib.nullcontext

    def step():
        with env_var('FASTSNN_QUANT_RELU_KERNEL', quant_kernel):
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        return loss.detach()  # checked after timing: no sync in the step

    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--arch', default='resnet18', choices=['resnet18', 'vgg11'])
    p.add_argument('--width', type=int, default=64, help='base channels')
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=32)
    p.add_argument('--bits', type=int, default=3)
    p.add_argument('--weight', choices=['none', 'uniform', 'apot'],
                   default='none', help='also fake-quantize weights (4 bit)')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    p.add_argument('--amp', action='store_true',
                   help='also time each model under bfloat16 autocast')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch decides)')
    add_results_arg(p)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    if cuda and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA GPU visible to torch')

    env = environment(device)
    torch.manual_seed(0)
    fp32 = build(args.arch, args.width).to(device).train()
    weight = None if args.weight == 'none' else dict(type=args.weight,
                                                     bits=4)
    qat = quantize_model(copy.deepcopy(fp32), args.bits, alpha=2.0,
                         weight=weight)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 10, (args.batch, ), device=device)
    qname = f'qat {args.bits}-bit'
    # each model trains its own copy: the steps change the weights
    steps = {'fp32': step_fn(fp32, x, y), qname: step_fn(qat, x, y)}
    if cuda:
        steps[f'{qname}, torch path'] = step_fn(
            copy.deepcopy(qat), x, y, quant_kernel='0')
    if args.amp:
        for k in list(steps):
            m = {'fp32': fp32}.get(k, qat)
            steps[f'{k}, bf16 autocast'] = step_fn(
                copy.deepcopy(m), x, y, amp=True,
                quant_kernel='0' if k.endswith('torch path') else None)
    for _ in range(args.warmup):
        for s in steps.values():
            s()
    times = {k: [] for k in steps}
    timer = Timer(device)
    for _ in range(args.repeats):
        for k, s in steps.items():
            times[k].append(timer(s) / 1e3)  # seconds
    for k, s in steps.items():
        loss = s()
        if not torch.isfinite(loss):
            raise SystemExit(f'error: {k}: loss {loss.item()} is not finite')

    setting = (f'{args.arch} width {args.width}, {args.size} px, batch '
               f'{args.batch}, weights {args.weight}')
    print(f"{setting}, {env['device']}, {args.repeats} repeats after "
          f'{args.warmup} warm-up')
    print(f'{"model":<34}{"median ms":>12}{"min ms":>10}{"max ms":>10}'
          f'{"/ fp32":>9}')
    med = {k: statistics.median(ts) for k, ts in times.items()}
    rows = []
    for k, ts in times.items():
        base = med['fp32, bf16 autocast'] if 'autocast' in k else med['fp32']
        row = [k, f'{med[k] * 1e3:.1f}', f'{min(ts) * 1e3:.1f}',
               f'{max(ts) * 1e3:.1f}', f'{med[k] / base:.3f}']
        rows.append(row)
        print(f'{row[0]:<34}{row[1]:>12}{row[2]:>10}{row[3]:>10}{row[4]:>9}')
    print(f"ratio QAT/fp32 (median): {med[qname] / med['fp32']:.3f}")
    if args.record:
        record('qat_step', env, setting,
               ['model', 'median (ms)', 'min (ms)', 'max (ms)',
                '/ ReLU (fp32) step'], rows,
               [f'{args.repeats} interleaved rounds after {args.warmup} '
                'warm-up; "fp32" is the same network with ReLU; autocast '
                'rows are divided by the ReLU step under autocast.'],
               md_path=args.results)


if __name__ == '__main__':
    main()
