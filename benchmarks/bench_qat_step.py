"""Train-step time of a QAT model against the same model in full precision.

QAT adds QuantReLU's elementwise work (and optional weight fake-quantization)
to every step; this measures what that costs on the same batch, interleaving
the two models so machine load affects both alike.

    python benchmarks/bench_qat_step.py --arch resnet18 --batch 32 --bits 3
"""
import argparse
import copy
import statistics
import time

import torch
from torch import nn

from fastsnn_mm.models.backbones import QVGG, QResNet
from fastsnn_mm.quantization import quantize_model


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


def step_fn(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if x.is_cuda:
            torch.cuda.synchronize()

    return step


def timed(step):
    t = time.perf_counter()
    step()
    return time.perf_counter() - t


def main():
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
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch decides)')
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    fp32 = build(args.arch, args.width).to(args.device).train()
    weight = None if args.weight == 'none' else dict(type=args.weight,
                                                     bits=4)
    qat = quantize_model(copy.deepcopy(fp32), args.bits, alpha=2.0,
                         weight=weight)
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    y = torch.randint(0, 10, (args.batch, ), device=args.device)
    steps = {'fp32': step_fn(fp32, x, y), f'qat {args.bits}-bit': step_fn(
        qat, x, y)}
    for _ in range(args.warmup):
        for s in steps.values():
            s()
    times = {k: [] for k in steps}
    for _ in range(args.repeats):
        for k, s in steps.items():
            times[k].append(timed(s))

    print(f'{args.arch} width {args.width}, batch {args.batch}x3x'
          f'{args.size}x{args.size}, {args.device}, torch threads '
          f'{torch.get_num_threads()}, weights {args.weight}, '
          f'{args.repeats} repeats after {args.warmup} warm-up')
    print(f'{"model":<12}{"median ms":>12}{"min ms":>10}{"max ms":>10}')
    med = {}
    for k, ts in times.items():
        med[k] = statistics.median(ts)
        print(f'{k:<12}{med[k] * 1e3:>12.1f}{min(ts) * 1e3:>10.1f}'
              f'{max(ts) * 1e3:>10.1f}')
    fp, q = med.values()
    print(f'ratio QAT/fp32 (median): {q / fp:.3f}')


if __name__ == '__main__':
    main()
