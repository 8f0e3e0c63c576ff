"""Time-driven alarm work: shelving expiry, flood end, closing quiet incidents."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

import psycopg

from alerting import actions, incidents, noise
from alerting.context import Clock, connect, reopen
from alerting.store import Context

log = logging.getLogger(__name__)


def tick(
    conn: psycopg.Connection[Any], ctx: Context, now: datetime, quiet_s: float
) -> dict[str, list[Any]]:
    """One pass of every time-driven rule at ``now``; returns what changed."""
    return {
        "unshelved": actions.expire_shelves(conn, now),
        "floods_ended": noise.end_floods(conn, now, ctx.limits),
        "incidents_closed": incidents.close_quiet(conn, now, quiet_s),
    }


async def run_ticker(
    conninfo: str, ctx: Context, clock: Clock, every_s: float, quiet_s: float, stop: asyncio.Event
) -> None:
    """Tick every ``every_s`` until ``stop`` is set; errors are logged and retried."""
    conn = await asyncio.to_thread(connect, conninfo, True)
    try:
        while not stop.is_set():
            try:
                # a new connection when the server closed ours (restart, kill)
                conn = await asyncio.to_thread(reopen, conn, conninfo, True)
                done = await asyncio.to_thread(tick, conn, ctx, clock(), quiet_s)
                if any(done.values()):
                    log.info("tick: %s", {k: v for k, v in done.items() if v})
            except psycopg.Error:
                log.exception("tick failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
    finally:
        conn.close()
