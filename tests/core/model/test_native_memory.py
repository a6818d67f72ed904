"""``core.model.native_memory``: freed native memory leaves the process when a streamed run says so.

glibc's settings are process-wide, so the allocator checks run in fresh
processes: one with the policy, and one without as the control that shows
the retention exists to be fixed (otherwise the check could not fail).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from core.model import native_memory

ROOT = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024

SCRIPT = """
import ctypes, json, sys
from core.model.native_memory import return_memory_promptly

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
page = 4096

def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * page

def touched(size):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block

if sys.argv[1] == "1":
    return_memory_promptly()
libc.free(touched(24 << 20))  # one large block freed: glibc would raise its mmap threshold
before = rss()
blocks = [touched(4 << 20) for _ in range(6)]  # a batch's activations, 24 MiB
held = rss()
for block in blocks:
    libc.free(block)
print(json.dumps({"held": held - before, "kept": rss() - before}))
"""


def _run(policy: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, "1" if policy else "0"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_freed_blocks_leave_the_process_with_the_fixed_threshold():
    control, fixed = _run(policy=False), _run(policy=True)
    assert control["held"] > 20 * MIB and fixed["held"] > 20 * MIB, (control, fixed)
    assert control["kept"] > 20 * MIB, control  # the adaptive threshold keeps them in the heap
    assert fixed["kept"] < 2 * MIB, fixed


def test_release_frees_mkl_buffers():
    torch = pytest.importorskip("torch")
    if native_memory.mkl_buffer_bytes() is None:
        pytest.skip("no MKL reachable in this torch")
    x, w = torch.randn(1024, 512), torch.randn(2048, 512)
    (x @ w.T).sum()
    if native_memory.mkl_buffer_bytes() == 0:
        pytest.skip("MKL's memory manager keeps nothing here (MKL_DISABLE_FAST_MM?)")
    native_memory.release_freed_memory()
    assert native_memory.mkl_buffer_bytes() == 0


def test_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))
    native_memory._libc.cache_clear()
    try:
        assert native_memory._libc() is None
        native_memory.return_memory_promptly()
        native_memory.release_freed_memory()
    finally:
        native_memory._libc.cache_clear()


def test_the_threshold_is_twice_the_hidden_states_within_glibcs_range():
    assert native_memory.mapping_threshold(1 * MIB) == 2 * MIB
    assert native_memory.mapping_threshold(3 * MIB) == 6 * MIB
    assert native_memory.mapping_threshold(4096) == MIB  # never below 1 MiB
    assert native_memory.mapping_threshold(90 * MIB) == 32 * MIB  # glibc's own ceiling


SIZES_SCRIPT = """
import ctypes, json
from core.model.native_memory import mapping_threshold, return_memory_promptly

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2

def mapped_while_held(size, count):
    before = libc.mallinfo2().hblkhd  # bytes in blocks with their own mappings
    blocks = [libc.malloc(size) for _ in range(count)]
    held = libc.mallinfo2().hblkhd - before
    for block in blocks:
        libc.free(block)
    return held

return_memory_promptly(mapping_threshold(1 << 20))  # hidden states of 1 MiB a batch
# Wider blocks first: glibc serves any request from free heap space that fits before it
# maps anything, so freed hidden-state blocks could hold one of them.
wide = mapped_while_held(6 << 20, 4)  # 24 MiB of wider intermediates
hidden = mapped_while_held(1 << 20, 8)  # 8 MiB of hidden-state blocks
print(json.dumps({"wide_mapped": wide, "hidden_mapped": hidden}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_hidden_state_blocks_come_from_the_heap_and_wider_blocks_get_mappings():
    done = subprocess.run(
        [sys.executable, "-c", SIZES_SCRIPT],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    mapped = json.loads(done.stdout)
    assert mapped["wide_mapped"] >= 24 * MIB, mapped  # their own mappings: unmapped when freed
    assert mapped["hidden_mapped"] == 0, mapped  # from the heap, where freed blocks are reused
