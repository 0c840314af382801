"""One clock for the benchmarks: milliseconds of one call, between two CUDA
events on a GPU (kernels run asynchronously there, so the host clock would
time the launch only), by the wall clock elsewhere; and the paired rounds
every "this against that" ratio is measured with."""
import statistics
import time

import torch


def wall_ms() -> float:
    """The host clock in milliseconds (for spans a callable cannot wrap,
    e.g. between a module's forward pre-hook and its forward hook)."""
    return time.perf_counter() * 1e3


class Timer:
    """``Timer(device)(fn)``: milliseconds that ``fn()`` took."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == 'cuda'

    def __call__(self, fn):
        if not self.cuda:
            t0 = wall_ms()
            fn()
            return wall_ms() - t0
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)


def paired(base, other, repeats, device, warmup=1):
    """Median milliseconds of ``base`` and ``other``, the median of their
    per-round ratio other / base, and its min and max.

    Each round times both back to back, alternating which goes first, so
    load from elsewhere on the machine hits both alike.
    """
    timer = Timer(device)
    for _ in range(warmup):
        base(), other()
    tb, to, ratios = [], [], []
    for r in range(repeats):
        if r % 2:
            o, b = timer(other), timer(base)
        else:
            b, o = timer(base), timer(other)
        tb.append(b), to.append(o), ratios.append(o / b)
    return (statistics.median(tb), statistics.median(to),
            statistics.median(ratios), min(ratios), max(ratios))
