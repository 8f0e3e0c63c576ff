"""settle_heap(): the start-up heap is frozen and every later collection is timed;
bound_c_heap(): a burst does not raise glibc's mmap threshold."""

from __future__ import annotations

import ctypes
import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from common.heap import GC_PAUSE_SECONDS, _PauseTimer, settle_heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    callbacks = list(gc.callbacks)
    yield
    gc.unfreeze()
    gc.callbacks[:] = callbacks


def _count(generation: str) -> float:
    for metric in GC_PAUSE_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels["generation"] == generation:
                return sample.value
    return 0.0


@pytest.mark.usefixtures("restore_gc")
def test_settle_heap_freezes_what_exists_and_times_later_collections() -> None:
    long_lived = [{"sensor": i} for i in range(10_000)]
    settle_heap()
    settle_heap()  # idempotent: one timer, not two
    assert gc.get_freeze_count() >= len(long_lived)
    assert sum(isinstance(cb, _PauseTimer) for cb in gc.callbacks) == 1
    before = _count("2")
    gc.collect(2)
    assert _count("2") == before + 1


# Run in a fresh interpreter: mallopt settings last for the process, and the test needs
# glibc's default (dynamic) threshold beforehand to show the difference.
_PROBE = """
import ctypes, sys
from common.heap import bound_c_heap

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == "bound":
    assert bound_c_heap()
burst = bytearray(8 * 2**20)  # mmapped; freeing it raises a dynamic threshold to 8 MiB
del burst
before = libc.mallinfo2().hblkhd
block = bytearray(2**20)
print(libc.mallinfo2().hblkhd - before)
"""


@pytest.mark.skipif(
    not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="needs glibc >= 2.33 (mallinfo2)"
)
@pytest.mark.parametrize(("mode", "mmapped"), [("default", False), ("bound", True)])
def test_bound_c_heap_keeps_large_blocks_mapped_after_a_burst(mode: str, mmapped: bool) -> None:
    """After an 8 MiB burst, glibc's default serves a 1 MiB block from the heap (where
    it may stay resident after free); with the fixed threshold it is still mmapped."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    assert (int(out.stdout) >= 2**20) is mmapped
