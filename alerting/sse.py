"""Server-sent events of alarm, incident and flood changes, resumable by Last-Event-ID.

Each event's id is its change-log id; a client that reconnects with Last-Event-ID
(browsers do it by themselves) gets every change after it, in order.

One poller per process reads the change log while anyone listens and hands new changes
to every subscriber's queue, so N clients cost one query. It reads when PostgreSQL
notifies a commit to the log (``alerting.listen``), and otherwise every ``poll_s``
(``fallback_poll_s`` while notifications arrive, so a lost one delays, never loses). A new
client first catches up from the database, then reads its queue, skipping ids it has
already sent. A client too slow to keep up is disconnected; it resumes from its
Last-Event-ID and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from psycopg_pool import ConnectionPool

from alerting import changes, metrics
from alerting.listen import ChangeListener, Wakeup

Change = tuple[int, str, str]
QUEUE_SIZE = 10_000


def start_after(pool: ConnectionPool, last_event_id: str | None, after: int | None) -> int:
    """Where a stream starts: after Last-Event-ID, else ``after``, else only new changes."""
    if last_event_id and last_event_id.strip().isdigit():
        return int(last_event_id)
    if after is not None:
        return after
    with pool.connection() as conn:
        return changes.last_id(conn)


def _fetch(pool: ConnectionPool, after: int, limit: int = 500) -> list[Change]:
    with pool.connection() as conn:
        return changes.since(conn, after, limit)


class Broadcaster:
    """Polls the change log while there are subscribers and fans changes out."""

    def __init__(
        self,
        pool: ConnectionPool,
        poll_s: float = 0.1,
        listener: ChangeListener | None = None,
        fallback_poll_s: float = 1.0,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.pool = pool
        self.queue_size = queue_size
        self.read_limit = max(1, min(500, queue_size // 2))
        self.poll_s = poll_s
        self.listener = listener
        self.fallback_poll_s = fallback_poll_s
        self.subscribers: set[asyncio.Queue[Change | None]] = set()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[Change | None]:
        queue: asyncio.Queue[Change | None] = asyncio.Queue(self.queue_size)
        self.subscribers.add(queue)
        metrics.SSE_CLIENTS.inc()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sse-poller")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change | None]) -> None:
        self.subscribers.discard(queue)
        metrics.SSE_CLIENTS.dec()

    async def _run(self) -> None:
        wakeup = Wakeup(self.listener, self.poll_s, self.fallback_poll_s)
        try:
            await self._poll(wakeup)
        finally:
            wakeup.close()

    async def _poll(self, wakeup: Wakeup) -> None:
        last = await asyncio.to_thread(start_after, self.pool, None, None)
        while self.subscribers:
            wakeup.arm()  # before the read: a commit notified during it is not missed
            # One read fills at most half a client's queue: a client that keeps reading
            # is never dropped for a burst, one that stopped is dropped within two reads.
            rows = await asyncio.to_thread(_fetch, self.pool, last, self.read_limit)
            for row in rows:
                for queue in list(self.subscribers):
                    try:
                        queue.put_nowait(row)
                    except asyncio.QueueFull:
                        self.subscribers.discard(queue)  # too slow: it will resume by id
                        metrics.SSE_DROPPED.inc()
                        with contextlib.suppress(asyncio.QueueEmpty):
                            queue.get_nowait()
                        queue.put_nowait(None)
            if rows:
                last = rows[-1][0]
            else:
                await wakeup.wait()


def _frame(change: Change) -> str:
    change_id, kind, payload = change
    return f"id: {change_id}\nevent: {kind}\ndata: {payload}\n\n"


async def events(
    pool: ConnectionPool,
    broadcaster: Broadcaster,
    after: int,
    disconnected: Callable[[], Awaitable[bool]],
    heartbeat_s: float = 5.0,
) -> AsyncIterator[str]:
    """The SSE text stream: changes after ``after``, then new ones as they commit."""
    queue = broadcaster.subscribe()  # before catching up: nothing falls in between
    try:
        yield f'retry: 1000\nevent: hello\ndata: {{"after": {after}}}\n\n'
        last = after
        while rows := await asyncio.to_thread(_fetch, pool, last):
            for row in rows:
                yield _frame(row)
            last = rows[-1][0]
        while not await disconnected():
            try:
                item = await asyncio.wait_for(queue.get(), heartbeat_s)
            except TimeoutError:
                # a named event without an id: keeps proxies open and lets the console
                # show that it is still receiving (a frozen screen becomes visible)
                yield f'event: heartbeat\ndata: {{"last_id": {last}}}\n\n'
                continue
            if item is None:
                return  # dropped for being slow: the client reconnects with its last id
            if item[0] > last:
                yield _frame(item)
                last = item[0]
    finally:
        broadcaster.unsubscribe(queue)
