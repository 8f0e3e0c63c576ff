"""settle_heap(): the start-up heap is frozen and every later collection is timed."""

from __future__ import annotations

import gc
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
