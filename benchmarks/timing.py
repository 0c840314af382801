"""One clock for the benchmarks: milliseconds of one call, between two CUDA
events on a GPU (kernels run asynchronously there, so the host clock would
time the launch only), by the wall clock elsewhere."""
import time

import torch


class Timer:
    """``Timer(device)(fn)``: milliseconds that ``fn()`` took."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == 'cuda'

    def __call__(self, fn):
        if not self.cuda:
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
