"""The GPU plan's memory, measured on the CPU.

The plan a GPU would choose depends only on the sizing pass's figures and
the free memory, so it can be computed here for a 16 GB and an 80 GB GPU
and then run on CPU tensors: the peak of that run against the QANN's is a
property of the plan, not of the device. QResNet-18 runs at the 224 px
benchmark shape (batch 32, T = 15) at width 1, so the test takes seconds.

Peak memory is counted tensor by tensor: every tensor an operation makes is
added while its storage lives (a dispatch mode sees each one), which is
what a caching GPU allocator must hold; weights and the input exist before
and count for neither model, so the ratio compares activations alone.
"""
import weakref

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from fastsnn_mm import convert_to_snn
from fastsnn_mm.models.backbones import QResNet
from fastsnn_mm.spiking import plan as planning
from fastsnn_mm.spiking.runner import run_plan
from fastsnn_mm.spiking.sizing import input_shape_info

GB = 10**9
T = 15


class PeakBytes(TorchDispatchMode):
    """Bytes of tensor storage alive at once, at most, within the block."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._seen = set()

    def _freed(self, key, nbytes):
        self._seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            if id(storage) in self._seen:  # a view, or written in place
                continue
            nbytes = storage.nbytes()
            self._seen.add(id(storage))
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._freed, id(storage), nbytes)
        return out


class Classifier(nn.Module):
    """The benchmarks' QResNet-18 classifier (``bench_snn.build``)."""

    def __init__(self, width):
        super().__init__()
        self.backbone = QResNet(depth=18, base_channels=width,
                                act_cfg=dict(type='QuantReLU', bits=4))
        self.fc = nn.Linear(width * 8, 10)

    def forward(self, x):
        return self.fc(self.backbone(x)[-1].mean((2, 3)))


def peak_of(fn):
    with PeakBytes() as counter:
        fn()
    return counter.peak


@pytest.mark.parametrize('size, batch, width', [(224, 32, 1)])
def test_gpu_plan_peak_within_1_5x_the_qann(size, batch, width):
    """(32 px, batch 128 presents 135 image-steps a pass against 128:
    test_device checks that plan; measured it was 0.86x the QANN's at
    width 4, 1.18x at width 1.)"""
    torch.manual_seed(0)
    qann = Classifier(width).eval()
    x = torch.randn(batch, 3, size, size)
    snn = convert_to_snn(qann, timesteps=T)
    with torch.no_grad():
        sizes = input_shape_info(snn.module, snn.module, x, T)
        plans = {free: planning.plan_for('meta', 'folded', T, batch, sizes,
                                         free_bytes=free * GB)
                 for free in (16, 80)}
        # both GPUs present about the QANN's batch per pass, all T steps
        # of each image at once
        assert plans[16] == plans[80]
        plan = plans[80]
        assert plan.steps == T and plan.per_slice is not None
        assert abs(plan.per_slice * T - batch) <= T / 2
        qann_peak = peak_of(lambda: qann(x))
        snn_peak = peak_of(lambda: run_plan(snn.module, snn.module, x, T,
                                            'folded', plan, sizes))
    assert snn_peak <= 1.5 * qann_peak, (plan, snn_peak / qann_peak)


def test_the_old_gpu_plan_would_fold_everything():
    """The 'free-memory' entry on an 80 GB GPU folds all T steps of the
    batch: T times the QANN's activations, which the default avoids."""
    sizes = dict(step_bytes=64 * 224 * 224 * 4, state_bytes=0,
                 sliceable=True)  # QResNet-18's first stage at 224 px
    free_memory = planning.POLICIES['free-memory']
    plan = planning.plan_within(free_memory.budgets(T, 32, sizes, 80 * GB),
                                'folded', T, 32, sizes)
    assert plan == planning.PassPlan(T, None, T)
    default = planning.plan_for('meta', 'folded', T, 32, sizes, 80 * GB)
    assert default.per_slice * default.steps <= 32


def test_peak_counter_counts_live_tensors():
    def work():
        a = torch.empty(1000)  # 4000 bytes
        b = a + 1              # 8000 alive
        del a
        c = b * 2              # 8000 again: a was freed
        return c.view(10, 100)  # a view adds nothing
    assert peak_of(work) == 8000
