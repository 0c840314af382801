"""Let glibc keep freed memory for reuse: opt-in, for processes we own.

A folded SNN pass allocates tensors of several MiB per layer. glibc gives
chunks above its mmap threshold back to the OS when they are freed, and
trims the heap top above its trim threshold, so the next tensor of that
size is fresh memory that page-faults on every first touch. On the 2-core
benchmark machine those faults made the SNN's first-stage convolutions
about 1.5x slower per image than the QANN's, and its neuron pass about 3x
slower than the kernel alone (``benchmarks/bench_snn.py`` measures both
allocator settings side by side). With both thresholds raised, freed memory
is reused instead; the process keeps its peak resident memory until it
exits, and peak memory itself does not grow.

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
