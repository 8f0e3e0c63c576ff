"""Change-log readers wake on PostgreSQL notifications, and still poll as a fallback.

Behavioural: the poll interval is set to 30 s, so a change that arrives within a few
seconds can only have been woken by the notification. The fallback tests switch the
notifying trigger off (a lost notification) or end the listening connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerting import changes, metrics, sse
from alerting.listen import ChangeListener
from alerting.relay import run_relay
from common.settings import BaseProcessSettings
from tests.fixtures.processes import read_topic
from tests.fixtures.services import Isolation, database

pytestmark = pytest.mark.integration

SLOW_POLL_S = 30.0  # longer than any bound below: only a notification is this fast
BOUND_S = 8.0  # generous for a loaded 2-core machine; a notification takes milliseconds


@pytest.fixture
def conninfo(stack: BaseProcessSettings, isolation: Isolation) -> str:
    return database(stack, isolation).conninfo()


@pytest.fixture
def pool(conninfo: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(conninfo, min_size=1, max_size=4) as p:
        yield p


def _append(conninfo: str, entity: str) -> int:
    """Commit one change, as the alerting consumer or an operator action does."""
    with psycopg.connect(conninfo) as conn, changes.transaction(conn):
        return changes.append(conn, "alarm", entity, {"alarm_id": entity})


async def _until(probe: Any, what: str, within_s: float = BOUND_S) -> None:
    deadline = time.monotonic() + within_s
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _stream_delivers(
    conninfo: str, pool: ConnectionPool, listener: ChangeListener | None, fallback_s: float,
    before: Any = None,
) -> list[float]:  # fmt: skip
    """Seconds from each of three commits to its arrival at a stream subscriber."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(listener.run(stop))] if listener else []
    broadcaster = sse.Broadcaster(pool, SLOW_POLL_S, listener, fallback_s)
    try:
        if listener:
            await _until(lambda: listener.connected, "the listener to connect")
        queue = broadcaster.subscribe()
        await asyncio.sleep(0.5)  # the poller's first read is done: it waits now
        if before is not None:
            await asyncio.to_thread(before)
        took = []
        for k in range(3):
            t0 = time.monotonic()
            change_id = await asyncio.to_thread(_append, conninfo, f"A{k}")
            item = await asyncio.wait_for(queue.get(), BOUND_S)
            took.append(time.monotonic() - t0)
            assert item is not None
            assert item[0] == change_id
            await asyncio.sleep(0.3)  # the poller has read again and found nothing
        broadcaster.unsubscribe(queue)
        return took
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def test_stream_wakes_on_notification_not_on_its_poll(conninfo: str, pool: ConnectionPool) -> None:
    listener = ChangeListener(conninfo)
    took = asyncio.run(_stream_delivers(conninfo, pool, listener, SLOW_POLL_S))
    assert max(took) < BOUND_S
    assert listener.notifications >= 3


def test_stream_without_notifications_waits_for_its_poll(
    conninfo: str, pool: ConnectionPool
) -> None:
    # the counterpart: without a listener the same stream does wait for the 30 s poll
    with pytest.raises(TimeoutError):
        asyncio.run(_stream_delivers(conninfo, pool, None, SLOW_POLL_S))


def test_a_lost_notification_is_caught_by_the_fallback_poll(
    conninfo: str, pool: ConnectionPool
) -> None:
    def lose_notifications() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("ALTER TABLE change_log DISABLE TRIGGER change_log_notify")

    listener = ChangeListener(conninfo)
    took = asyncio.run(_stream_delivers(conninfo, pool, listener, 0.5, lose_notifications))
    assert max(took) < BOUND_S
    assert listener.notifications == 0


def test_listener_reconnects_after_its_connection_is_killed(
    conninfo: str, pool: ConnectionPool, stack: BaseProcessSettings
) -> None:
    def kill_listener() -> None:
        with psycopg.connect(stack.database.conninfo(), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
        old = listener.backend_pid
        deadline = time.monotonic() + BOUND_S
        while listener.backend_pid == old or not listener.connected:
            assert time.monotonic() < deadline, "the listener did not reconnect"
            time.sleep(0.05)

    listener = ChangeListener(conninfo, retry_s=0.2)
    took = asyncio.run(_stream_delivers(conninfo, pool, listener, SLOW_POLL_S, kill_listener))
    assert max(took) < BOUND_S
    assert listener.notifications >= 3


def test_relay_wakes_on_notification(
    conninfo: str, stack: BaseProcessSettings, isolation: Isolation
) -> None:
    db = database(stack, isolation)
    kafka = stack.kafka.model_copy(update={"alarms_topic": isolation.alarms_topic})

    async def main() -> float:
        stop = asyncio.Event()
        listener = ChangeListener(conninfo)
        tasks = [
            asyncio.create_task(listener.run(stop)),
            asyncio.create_task(run_relay(db, kafka, stop, SLOW_POLL_S, listener, SLOW_POLL_S)),
        ]
        try:
            await _until(lambda: listener.connected, "the listener to connect")
            await asyncio.sleep(2.0)  # the relay started and found the log empty
            t0 = time.monotonic()
            change_id = await asyncio.to_thread(_append, conninfo, "R1")
            relayed = lambda: _relayed(conninfo) >= change_id  # noqa: E731
            await _until(relayed, "the relay to publish the change", within_s=BOUND_S + 5)
            return time.monotonic() - t0
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    took = asyncio.run(main())
    assert took < BOUND_S + 5
    (record,) = read_topic(stack, isolation.alarms_topic, 1)
    assert json.loads(record.value)["alarm_id"] == "R1"


def _relayed(conninfo: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT last_id FROM change_relay").fetchone()
        return int(row[0]) if row else 0


def test_relay_reads_at_most_once_per_gap_under_a_stream_of_commits(
    conninfo: str, stack: BaseProcessSettings, isolation: Isolation
) -> None:
    db = database(stack, isolation)
    kafka = stack.kafka.model_copy(update={"alarms_topic": isolation.alarms_topic})
    commits = 40

    async def main() -> tuple[float, float]:
        stop = asyncio.Event()
        listener = ChangeListener(conninfo)
        tasks = [
            asyncio.create_task(listener.run(stop)),
            asyncio.create_task(run_relay(db, kafka, stop, SLOW_POLL_S, listener, SLOW_POLL_S,
                                          min_gap_s=0.5)),
        ]  # fmt: skip
        try:
            await _until(lambda: listener.connected, "the listener to connect")
            await asyncio.sleep(1.0)  # the relay started and found the log empty
            before = metrics.RELAY_READS._value.get()
            t0 = time.monotonic()
            last = 0
            for k in range(commits):  # one commit (and one notification) each
                last = await asyncio.to_thread(_append, conninfo, f"S{k}")
            relayed = lambda: _relayed(conninfo) >= last  # noqa: E731
            await _until(relayed, "the relay to publish every change", within_s=BOUND_S + 10)
            return metrics.RELAY_READS._value.get() - before, time.monotonic() - t0
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    reads, took = asyncio.run(main())
    # one read per 0.5 s (+ the first, + the last one finding nothing), not one per commit
    assert reads <= took / 0.5 + 3
    assert reads < commits
