"""The network the SNN benchmarks measure, and how they measure memory.

``bench_snn.py`` (SNN against its QANN, per plan) and
``peer_spikingjelly.py`` (our SNN against SpikingJelly's run of the same
weights) share these, so both speak of the same model and the same peak.
"""
import gc
import json
import os
import subprocess
import sys

import torch
from core_import import import_core
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


def build(width, bits, seed=0):
    """QResNet-18 (``width`` channels in its first stage, ``bits``-bit
    QuantReLUs) with a linear classifier, in eval mode, every clip at 1.0
    and BN statistics drawn away from the identity."""
    import_core()
    from fastsnn_mm.models.backbones import QResNet
    torch.manual_seed(seed)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = QResNet(depth=18, base_channels=width,
                                    act_cfg=dict(type='QuantReLU', bits=bits))
            self.fc = nn.Linear(width * 8, 10)

        def forward(self, x):
            # pool the last two axes: [B, C, H, W] here, [T, B, C, H, W]
            # when SpikingJelly runs the same module multi-step
            return self.fc(self.backbone(x)[-1].mean((-2, -1)))
    net = Net().eval()
    for m in net.modules():  # give BN and alpha realistic, non-trivial values
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2)
            m.running_mean.uniform_(-0.2, 0.2)
        if hasattr(m, 'alpha'):
            m.alpha.data.fill_(1.0)
    return net


def model_bytes(net) -> int:
    """Bytes of the parameters and buffers of ``net``."""
    return sum(t.numel() * t.element_size()
               for t in list(net.parameters()) + list(net.buffers()))


def rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss_bytes():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('no VmHWM in /proc/self/status')


def cpu_peak(fn) -> int:
    """Peak resident bytes ``fn()`` needed above the process before it (run
    it in a fresh process: see :func:`run_child`)."""
    gc.collect()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset the peak-RSS mark to the current RSS
    base = rss_bytes()
    fn()
    return peak_rss_bytes() - base


def cuda_peak(fn) -> int:
    """Peak bytes allocated by ``fn()`` above what was allocated before."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def run_child(case, args, batch, timesteps) -> dict:
    """One memory case of ``bench_snn.py`` in a fresh process; its JSON.

    Big allocations are mmap'ed there (glibc thresholds below), so freed
    memory leaves the resident set and each case's peak is its own.
    """
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536',
               MALLOC_TRIM_THRESHOLD_='0')
    cmd = [sys.executable, os.path.join(HERE, 'bench_snn.py'), '--child',
           case, '--batch', str(batch), '--width', str(args.width),
           '--bits', str(args.bits), '--size', str(args.size),
           '--mem-timesteps', str(timesteps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def plot_time(rows, path):
    """SNN / (T x QANN) against T, one line per variant, min-max bars."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for variant in dict.fromkeys(r['variant'] for r in rows):
        pts = [r for r in rows if r['variant'] == variant]
        ax.errorbar([r['T'] for r in pts], [r['ratio'] for r in pts],
                    yerr=[[r['ratio'] - r['lo'] for r in pts],
                          [r['hi'] - r['ratio'] for r in pts]],
                    marker='o', capsize=3, label=variant)
    ax.axhline(1.0, color='grey', ls='--', lw=1)
    ax.set_xlabel('time steps T')
    ax.set_ylabel('wall(SNN folded) / (T x wall(QANN))')
    ax.set_xticks(sorted({r['T'] for r in rows}))
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f'\nplot: {path}')
