"""Server-sent events of alarm, incident and flood changes, resumable by Last-Event-ID.

Each event's id is its change-log id; a client that reconnects with Last-Event-ID
(browsers do it by themselves) gets every change after it, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from psycopg_pool import ConnectionPool

from alerting import changes


def start_after(pool: ConnectionPool, last_event_id: str | None, after: int | None) -> int:
    """Where a stream starts: after Last-Event-ID, else ``after``, else only new changes."""
    if last_event_id and last_event_id.strip().isdigit():
        return int(last_event_id)
    if after is not None:
        return after
    with pool.connection() as conn:
        return changes.last_id(conn)


def _fetch(pool: ConnectionPool, after: int) -> list[tuple[int, str, str]]:
    with pool.connection() as conn:
        return changes.since(conn, after)


async def events(
    pool: ConnectionPool,
    after: int,
    disconnected: Callable[[], Awaitable[bool]],
    poll_s: float = 0.1,
    heartbeat_s: float = 5.0,
) -> AsyncIterator[str]:
    """The SSE text stream: changes after ``after``, then new ones as they commit."""
    yield f'retry: 1000\nevent: hello\ndata: {{"after": {after}}}\n\n'
    last, quiet_since = after, time.monotonic()
    while not await disconnected():
        rows = await asyncio.to_thread(_fetch, pool, last)
        for change_id, kind, payload in rows:
            yield f"id: {change_id}\nevent: {kind}\ndata: {payload}\n\n"
            last = change_id
        if rows:
            quiet_since = time.monotonic()
            continue
        if time.monotonic() - quiet_since > heartbeat_s:
            # a named event without an id: keeps proxies open and lets the console
            # show that it is still receiving (a frozen screen becomes visible)
            yield f'event: heartbeat\ndata: {{"last_id": {last}}}\n\n'
            quiet_since = time.monotonic()
        await asyncio.sleep(poll_s)
