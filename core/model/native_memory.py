"""How a streamed run hands freed native memory back to the system (glibc, MKL).

``--stream-layers`` promises a resident size of about one layer plus one
batch of activations. Python frees the layer and the activations in time;
what the process keeps after that is up to the C allocators underneath:

- glibc's ``malloc`` serves blocks of 128 KiB and more with their own
  mappings, but raises that threshold (up to 32 MiB) each time such a mapping
  is freed. After the first layer's tensors are freed, every activation of a
  batch (a few MiB each) comes from the heap instead, and the heap keeps what
  was freed for reuse: batches of different lengths fragment it, and a
  streamed run's peak resident size was 25–50 MiB higher than its live
  memory on the benchmark's model. A fixed threshold
  (:func:`return_memory_promptly`) keeps large blocks in their own mappings,
  given back the moment they are freed. Their pages are faulted in afresh
  for every batch, and mapping many small blocks costs system calls: at
  128 KiB a streamed run on CPU took +20–30 % CPU time, and at 1 MiB, where
  the benchmark's hidden states (1 MiB a batch) were mapped too, about
  +10 % more than with them in the heap. The
  threshold is therefore set from the batch (:func:`mapping_threshold`):
  blocks of a batch's hidden states stay in the heap and are reused, wider
  ones are mapped. Activations above 32 MiB, as in real models, are mapped
  afresh whatever the threshold.
- MKL keeps the work buffers of its matrix products for reuse (its "fast
  memory manager"): tens of MiB of address space, a few MiB of it resident.
  :func:`release_freed_memory` frees them between layers, with the heap's
  free pages.

Both are no-ops where the library is absent (macOS, musl, a torch without
MKL), so callers need not know the platform.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from functools import cache
from typing import Any

#: ``M_MMAP_THRESHOLD`` of glibc's ``mallopt``.
_M_MMAP_THRESHOLD = -3
#: Blocks from this size up get their own mapping at the least (glibc starts at
#: 128 KiB); setting a threshold explicitly also turns glibc's adaptive raise off.
MMAP_THRESHOLD = 1024 * 1024
#: glibc's own ceiling for its adaptive threshold (64-bit): larger blocks are always mapped.
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


@cache
def _libc() -> Any:
    """glibc, or None (other C libraries have no ``malloc_trim``/compatible ``mallopt``)."""
    if platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    return libc


@cache
def _mkl() -> Any:
    """The MKL that torch calls, if its service functions are reachable; else None.

    torch's x86 wheels link MKL statically into ``libtorch_cpu`` and export
    its internal names (``mkl_serv_*``); a torch linked against a shared MKL
    exposes the public ones in the process.
    """
    try:
        import torch  # lazy: optional dependency (the collect extra)
    except ImportError:
        return None
    if not torch.backends.mkl.is_available():
        return None
    candidates = [os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"), None]
    for path in candidates:
        if path is not None and not os.path.exists(path):
            continue
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for free, stat in (
            ("mkl_serv_free_buffers", "mkl_serv_mem_stat"),
            ("mkl_free_buffers", "mkl_mem_stat"),
        ):
            if hasattr(library, free) and hasattr(library, stat):
                free_buffers = getattr(library, free)
                free_buffers.restype = None
                mem_stat = getattr(library, stat)
                mem_stat.restype = ctypes.c_int64
                mem_stat.argtypes = [ctypes.POINTER(ctypes.c_int)]
                return free_buffers, mem_stat
    return None


def mapping_threshold(hidden_state_bytes: int) -> int:
    """The size from which blocks get their own mapping, for batches of this hidden-state size.

    Twice one batch's hidden states (the largest batch's), within
    [:data:`MMAP_THRESHOLD`, :data:`MMAP_THRESHOLD_MAX`]. Hidden-state-shaped
    tensors are the most frequent allocations of a layer call (the residual
    stream, norms, attention's output, the router's input): from the heap they
    are reused in place, batch after batch. Wider blocks (MLP and expert
    intermediates, attention scores) get their own mappings, which leave the
    process when freed instead of fragmenting the heap. Measured on the
    benchmark's model (hidden states of 1 MiB a batch, one thread, medians
    of interleaved stream/whole pairs on a quiet machine): a fixed 1 MiB, which
    mapped the hidden states too, cost 1.24–1.33 × the whole model's CPU time;
    twice the hidden states (2 MiB there), 1.13–1.21 ×, for 5–10 MiB more
    peak (``benchmarks/RESULTS.md``).
    """
    return min(MMAP_THRESHOLD_MAX, max(MMAP_THRESHOLD, 2 * hidden_state_bytes))


def return_memory_promptly(threshold: int = MMAP_THRESHOLD) -> None:
    """Hold glibc's mmap threshold at ``threshold`` (see :func:`mapping_threshold`).

    glibc has no call that turns its adaptive threshold back on, so this
    lasts; it is set only by streamed runs on CPU.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, threshold)


def mkl_buffer_bytes() -> int | None:
    """Bytes MKL's memory manager holds now (None without a reachable MKL)."""
    mkl = _mkl()
    if mkl is None:
        return None
    count = ctypes.c_int()
    return int(mkl[1](ctypes.byref(count)))


def release_freed_memory() -> None:
    """Free MKL's cached work buffers, then give the heap's free pages back to the system.

    Without the trim, the allocator kept a freed layer's pages for reuse, and
    a streamed run's resident memory crept up by ~10 MB per layer of a 25 MB-layer model.
    """
    mkl = _mkl()
    if mkl is not None:
        mkl[0]()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
