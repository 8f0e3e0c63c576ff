"""Wake-ups when the change log grows: PostgreSQL LISTEN/NOTIFY, with polling as fallback.

A trigger on ``change_log`` (migration 0024) sends ``NOTIFY chemwatch_change_log`` with
the table's schema as payload when a transaction that appended changes commits. One
listener per process holds a connection that LISTENs and wakes every reader of the log
(the live stream's poller, the Kafka relay) at once, instead of each finding the change
on its next fixed-interval poll.

A notification is only a hint: readers always read "everything after the last id"
from the table, and still poll, slowly, while the listener is connected (a lost
notification costs at most that interval) and at their normal interval while it is
not (database restart: it reconnects by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

log = logging.getLogger(__name__)
CHANNEL = "chemwatch_change_log"


class ChangeListener:
    """LISTENs for change-log commits of our schema and wakes every subscribed reader."""

    def __init__(self, conninfo: str, retry_s: float = 1.0) -> None:
        self.conninfo = conninfo
        self.retry_s = retry_s
        self.connected = False
        self.backend_pid: int | None = None  # of the listening connection (tests end it)
        self.notifications = 0
        self._wakeups: set[asyncio.Event] = set()

    def subscribe(self) -> asyncio.Event:
        """An event set on every notification (and on every (re)connection)."""
        event = asyncio.Event()
        self._wakeups.add(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._wakeups.discard(event)

    def _wake(self) -> None:
        for event in self._wakeups:
            event.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop`` is set, reconnecting after errors."""
        while not stop.is_set():
            try:
                await self._listen(stop)
            except (psycopg.Error, OSError) as exc:
                log.warning("change-log notifications lost (%s); polling until back", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.retry_s)

    async def _listen(self, stop: asyncio.Event) -> None:
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        try:
            row = await (await conn.execute("SELECT current_schema()")).fetchone()
            schema = str(row[0]) if row else "public"
            await conn.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = conn.info.backend_pid
            self.connected = True
            self._wake()  # what committed while nobody listened is read now
            while not stop.is_set():
                # a bounded wait, so that ``stop`` is seen without a notification
                async for notice in conn.notifies(timeout=1.0):
                    if notice.payload == schema:
                        self.notifications += 1
                        self._wake()
        finally:
            self.connected = False
            await conn.close()


class Wakeup:
    """How a reader of the change log waits for more: a notification or its poll interval.

    Call :meth:`arm` before reading the log and :meth:`wait` when the read found nothing:
    a notification that arrives in between is not missed (the event stays set).
    """

    def __init__(
        self, listener: ChangeListener | None, poll_s: float, fallback_poll_s: float
    ) -> None:
        self.listener = listener
        self.poll_s = poll_s
        self.fallback_poll_s = fallback_poll_s
        self._event = listener.subscribe() if listener else asyncio.Event()

    def arm(self) -> None:
        self._event.clear()

    def timeout_s(self) -> float:
        """The slow fallback poll while notifications arrive, else the normal poll."""
        listening = self.listener is not None and self.listener.connected
        return self.fallback_poll_s if listening else self.poll_s

    async def wait(self, stop: asyncio.Event | None = None) -> None:
        """Until notified, ``stop`` is set, or the poll interval has passed."""
        waits = [asyncio.ensure_future(self._event.wait())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(
                waits, timeout=self.timeout_s(),
                return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
        finally:
            for w in waits:
                w.cancel()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.unsubscribe(self._event)
