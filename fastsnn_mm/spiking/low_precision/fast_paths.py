"""Which device runs which spike dtype fast, said once per process.

On this project's 2-core development VM (AMD EPYC, AVX2 only: no
AVX512-BF16, AMX or AVX512-FP16) oneDNN has no bfloat16 / float16
convolution, and torch's fallback kernels are far slower than float32: one
3x3 conv, 64 -> 64 channels, 32 px, batch 224, took 0.74 s in float32,
36 s in bfloat16 and 38 s in float16 (a one-off timing), and the whole
bfloat16 SNN 17-19x T float32 QANN passes
(``benchmarks/bench_spike_dtype.py``). oneDNN's int8 convolution does run
there: 0.70x float32 over all spike-reading convs of QResNet-18 (same
benchmark). On a CPU with AVX512-BF16 the issue measured bfloat16 at 0.47x.
"""
import logging
import time

import torch
from mmengine.logging import print_log

from .kernels import onednn_int8_works
from .options import SPIKE_DTYPES, is_int8

_SAID = set()
_TIMED = set()
#: how much slower than float32 a spike dtype may run before it is named
SLOWER = 1.1


def _cpu_has_fast(dtype) -> bool:
    """oneDNN's own answer: bfloat16 needs AVX512-BF16 or AMX, float16
    AVX512-FP16 or AMX-FP16; without them torch falls back to reference
    kernels many times slower than float32."""
    check = {torch.bfloat16: '_is_mkldnn_bf16_supported',
             torch.float16: '_is_mkldnn_fp16_supported'}[dtype]
    try:
        return bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):
        return False


def slow_path_reason(device, spike_dtype):
    """Why ``spike_dtype`` has no fast path on ``device``, or None."""
    device = torch.device(device)
    dtype = SPIKE_DTYPES[spike_dtype]
    if device.type == 'cpu':
        if is_int8(spike_dtype):
            return None if onednn_int8_works() else (
                'this torch has no working oneDNN int8 convolution: int8 '
                'spikes run as exact float32 convolutions of the integer '
                'weights, no faster than float32')
        if _cpu_has_fast(dtype):
            return None
        return (f'this CPU has no fast {spike_dtype} convolution (oneDNN '
                f'reports no {spike_dtype} support: AVX512-BF16 / '
                'AVX512-FP16 / AMX are missing): torch runs fallback '
                'kernels, tens of times slower than float32; '
                "spike_dtype='int8' has a fast path on this CPU")
    if device.type == 'cuda':
        if is_int8(spike_dtype):
            return ('torch has no int8 convolution on CUDA: int8 spikes run '
                    'as exact float32 (TF32) convolutions of the integer '
                    'weights')
        if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
            return 'this GPU has no bfloat16 tensor cores'
        return None
    return f'no fast {spike_dtype} path is known on {device.type}'


def say_if_slow(device, spike_dtype):
    """Log :func:`slow_path_reason` once per process, device kind and
    spike dtype."""
    key = (torch.device(device).type, spike_dtype)
    if key in _SAID:
        return
    _SAID.add(key)
    reason = slow_path_reason(device, spike_dtype)
    if reason:
        print_log(f'FastSNN: spike_dtype={spike_dtype!r} on {key[0]}: '
                  f'{reason}', logger='current', level=logging.WARNING)


def _ms(fn):
    """Wall milliseconds of one call of ``fn`` (its device synchronised)."""
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def timed(device, spike_dtype) -> bool:
    """Whether :func:`time_once` ran for this device kind and dtype (a
    layer asks before it makes the calls to time)."""
    return (torch.device(device).type, spike_dtype) in _TIMED


def time_once(device, spike_dtype, name, low, float32):
    """Once per process, device kind and spike dtype: time calls of a
    spike-reading layer in ``spike_dtype`` (``low``) against the same call
    in float32 (``float32``), after the trace's call paid for any set-up
    (the fastest of three calls each), and name the dtype in the log with
    the factor when it ran more than :data:`SLOWER` times slower: a
    capability check (:func:`slow_path_reason`) cannot see every slow
    kernel, a clock can. Returns the factor, or None when already
    timed."""
    key = (torch.device(device).type, spike_dtype)
    if key in _TIMED:
        return None
    _TIMED.add(key)
    # three calls of each, interleaved, the fastest of each: the first
    # calls may pay for a primitive made for a new shape or layout, or
    # for memory faulted in (an int8 conv that runs at 0.3x float32 took
    # 20x at its first two calls on a new layout, seen here)
    lows, floats = zip(*((_ms(low), _ms(float32)) for _ in range(3)))
    factor = min(lows) / max(min(floats), 1e-6)
    if factor > SLOWER:
        print_log(f'FastSNN: spike_dtype={spike_dtype!r} on {key[0]} ran '
                  f'{factor:.2f}x the time of float32 on layer {name} '
                  '(the fastest of three calls each, timed once per '
                  'process): expect the SNN to be slower than with '
                  'float32 spikes here; '
                  'spike_dtype=None keeps float32', logger='current',
                  level=logging.WARNING)
    return factor
