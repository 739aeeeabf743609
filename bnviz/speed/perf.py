"""Process-wide speed settings that leave the maths alone.

glibc's malloc hands every allocation above 128 KiB (a threshold it raises only after a
free) to mmap, and gives it back with munmap. A LeNet step on a batch of 256 allocates a few
dozen activation and gradient buffers of 0.5-4 MB, so every step page-faults each of them in
afresh: `benchmarks/bench.py` measured about 1,000 minor faults per step and a fifth of the
step time in the kernel. Keeping those buffers in malloc's heap makes the next step reuse
warm pages. That is what jemalloc or tcmalloc would do (PyTorch's CPU tuning guide suggests
them); mallopt gets it without preloading a library.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling: buffers up to 32 MiB come from the heap
TRIM_THRESHOLD = 256 << 20  # hand memory back to the OS only past 256 MiB of free heap top
TOP_PAD = 64 << 20  # grow the heap in 64 MiB steps

_lock = threading.Lock()
_state: dict[str, object] = {}


def tune_allocator() -> str:
    """Apply the settings once per process; returns what was done, in words.

    BNVIZ_ALLOCATOR=system leaves malloc as it is (to compare, or where memory is tight).
    A no-op off Linux/glibc, and where jemalloc or tcmalloc is preloaded."""
    with _lock:
        if "result" in _state:
            return str(_state["result"])
        _state["result"] = result = _tune()
        return result


def _tune() -> str:
    if os.environ.get("BNVIZ_ALLOCATOR", "").lower() == "system":
        return "system malloc (BNVIZ_ALLOCATOR=system)"
    if not sys.platform.startswith("linux"):
        return "system malloc (allocator tuning is for glibc on Linux)"
    preload = os.environ.get("LD_PRELOAD", "")
    if "jemalloc" in preload or "tcmalloc" in preload:
        return f"preloaded allocator ({preload})"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return "system malloc (no mallopt in this C library)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(p, v) == 1 for p, v in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                             (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                                             (M_TOP_PAD, TOP_PAD)))
    return "glibc malloc, buffers kept in the heap" if ok else "system malloc (mallopt refused)"


def allocator() -> str:
    """What tune_allocator() did, or that it has not run in this process."""
    return str(_state.get("result", "system malloc (not tuned)"))
