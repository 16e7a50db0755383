"""Keep freed memory in the process: glibc malloc settings for training loops on CPUs.

A training step allocates and frees the same large activation buffers every time. glibc
serves blocks above its (dynamic) mmap threshold with fresh ``mmap`` pages and trims the heap
top back to the kernel, so each step faults its buffers in again: 900 to 7,000 minor page
faults per step on mnist5k smallcnn and PreActResNet18 w16 at batch 100. Serving blocks up to
32 MB from the heap and never trimming it removes most of them (0 to 800 per step left,
varying from run to run). On this project's noisy 2-core CPU (``bench/RESULTS.md``; medians
of 4 alternated processes of 40 steps) the smallcnn step is about 10% faster (CE 35.0 -> 31.9
ms, Laplacian 50.8 -> 45.4 ms); the PreActResNet18 w16 step is unchanged within noise. The
cost: the process keeps its peak heap.

This is what PyTorch's CPU performance guide gets by swapping in jemalloc or tcmalloc, with
no dependency. It changes the whole process and was measured on one AVX-512 CPU only, so it is
opt-in: ``RBG_MALLOC_TUNING=1`` makes ``rbg`` apply it at start-up (off by default).
"""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # the cap of glibc's own dynamic threshold on 64-bit
_TOP_PAD = 64 * 1024 * 1024  # heap growth per sbrk
_TRIM_THRESHOLD = 2**31 - 1  # give the free heap top back only beyond 2 GiB


def tune_malloc() -> bool:
    """Apply the settings above where the C library is glibc; True if they were applied.

    Does nothing (False) unless ``RBG_MALLOC_TUNING=1``, on other C libraries, when the user
    set glibc's malloc environment variables (``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``, or ``glibc.malloc.*`` tunables), or
    preloads another allocator (``LD_PRELOAD`` naming a ``malloc`` library).
    """
    if os.environ.get("RBG_MALLOC_TUNING", "0") != "1":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                                     "MALLOC_TOP_PAD_")):
        return False
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if "malloc" in os.environ.get("LD_PRELOAD", ""):  # jemalloc, tcmalloc: theirs to tune
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only)
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
                (_M_TOP_PAD, _TOP_PAD))
    applied = [mallopt(option, value) == 1 for option, value in settings]  # every one tried
    return all(applied)
