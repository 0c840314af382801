"""retain_freed_memory (called by tools/test.py): glibc then reuses a freed
buffer instead of mapping fresh, page-faulting memory for the next one."""
import os.path as osp
import platform
import subprocess
import sys

import pytest

# run in a fresh process: the setting is process-wide; the module is loaded
# by path so the child needs neither torch nor the mm stack
CHILD = '''
import ctypes, importlib.util, resource, sys
spec = importlib.util.spec_from_file_location('allocator', sys.argv[1])
allocator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(allocator)
if sys.argv[2] == 'retain':
    assert allocator.retain_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
size, faults = 20 * 2**20, []
for _ in range(2):  # a 20 MiB buffer, used and freed twice
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(size)
    libc.memset(p, 1, size)
    libc.free(p)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(faults[1])
'''


MODULE = osp.join(osp.dirname(__file__), '..', 'fastsnn_mm', 'utils',
                  'allocator.py')


def second_use_faults(mode):
    out = subprocess.run(
        [sys.executable, '-c', CHILD, MODULE, mode],
        capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='glibc only')
def test_freed_buffers_are_reused_without_page_faults():
    pages = 20 * 2**20 // 4096
    # glibc's own thresholds: the second buffer is fresh memory again
    assert second_use_faults('default') > pages // 2
    assert second_use_faults('retain') < pages // 20
