"""The live stream's fan-out without a database: a client that stops reading is dropped
once its queue is full, and the others get every change in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from alerting import sse

DROPPED = "chemwatch_alerting_sse_dropped_total"


class ChangeLog:
    """Stands in for the change_log table: ``_fetch`` and ``start_after`` read it."""

    def __init__(self) -> None:
        self.rows: list[sse.Change] = []
        self.limits: list[int] = []

    def append(self, n: int) -> None:
        start = len(self.rows)
        self.rows += [(i, "alarm", f'{{"n": {i}}}') for i in range(start + 1, start + n + 1)]

    def fetch(self, _pool: Any, after: int, limit: int = 500) -> list[sse.Change]:
        self.limits.append(limit)
        return [r for r in self.rows if r[0] > after][:limit]


@pytest.fixture
def change_log(monkeypatch: pytest.MonkeyPatch) -> ChangeLog:
    log = ChangeLog()
    monkeypatch.setattr(sse, "_fetch", log.fetch)
    monkeypatch.setattr(sse, "start_after", lambda _pool, _last, _after: 0)
    return log


def test_a_client_that_stops_reading_is_dropped_and_the_others_get_everything(
    change_log: ChangeLog,
) -> None:
    dropped_before = REGISTRY.get_sample_value(DROPPED) or 0.0

    async def scenario() -> tuple[list[int], list[Any], set[Any], Any]:
        b = sse.Broadcaster(None, poll_s=0.01, queue_size=10)  # type: ignore[arg-type]
        fast, slow = b.subscribe(), b.subscribe()
        got: list[int] = []

        async def read_fast() -> None:
            while len(got) < 23:
                item = await fast.get()
                assert item is not None, "the reading client was dropped"
                got.append(item[0])

        reader = asyncio.create_task(read_fast())
        change_log.append(23)  # more than a queue holds, and more than one read
        await asyncio.wait_for(reader, 10)
        left = [slow.get_nowait() for _ in range(slow.qsize())]
        subscribers = set(b.subscribers)
        b.unsubscribe(fast)
        b.unsubscribe(slow)
        await asyncio.sleep(0.05)  # the poller ends once nobody listens
        return got, left, subscribers, fast

    got, left, subscribers, fast = asyncio.run(scenario())
    assert got == list(range(1, 24))
    # the slow client's full queue (1-10) gave up its oldest change for the end marker
    assert [r[0] for r in left[:-1]] == list(range(2, 11))
    assert left[-1] is None
    assert subscribers == {fast}
    assert REGISTRY.get_sample_value(DROPPED) == dropped_before + 1
    # a read takes at most half a queue, so one burst never drops a reading client
    assert set(change_log.limits) == {5}
