"""Let glibc keep freed memory for reuse: opt-in, for processes we own.

A folded SNN pass allocates tensors of several MiB per layer. glibc gives
chunks above its mmap threshold back to the OS when they are freed, and
trims the heap top above its trim threshold, so the next tensor of that
size is fresh memory that page-faults on every first touch. The SNN's
folded tensors are larger than the QANN's and pay more for it: on the
2-core benchmark machine its first-stage convolutions took 1.34x the
QANN's time with glibc's defaults and 0.93x with freed memory kept
(``benchmarks/bench_snn.py --layers 7``, which times both settings side by
side). With both thresholds raised, freed memory is reused instead; the
process holds on to it until it exits rather than returning it to the OS.

The setting is process-wide, so only entry points that own their process
call it (``tools/test.py``, the benchmark), never an import. Other C
libraries (musl) have no ``mallopt``: the call then does nothing.
"""
import ctypes

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: the ceiling of glibc's own adaptive threshold on 64-bit systems: above
#: the runner's folded-tensor budget (16 MiB)
MMAP_THRESHOLD = 32 * 2**20


def retain_freed_memory(mmap_threshold: int = MMAP_THRESHOLD,
                        trim_threshold: int = 2**30) -> bool:
    """Raise glibc's mmap and trim thresholds; True when both took."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], \
        ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and \
        bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
