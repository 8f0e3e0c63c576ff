"""Deliver due notifications with retries, exponential backoff with jitter, dead-letter.

Each notification is locked (FOR UPDATE SKIP LOCKED, so several service instances
share the work), sent, and its outcome recorded in the same transaction. A crash
between sending and commit leaves it pending: it is sent again with the same
idempotency key (the receiver's cue to drop it); a clean stop never duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import smtplib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg

from alerting import metrics
from alerting.context import connect, reopen
from alerting.notify import channels
from alerting.notify.escalation import escalate
from alerting.notify.settings import Channel, NotifySettings

log = logging.getLogger(__name__)


def backoff_s(channel: Channel, attempts: int, rng: random.Random) -> float:
    """Delay before retry number ``attempts``: doubling, capped, half of it jittered."""
    delay = min(channel.backoff_max_s, channel.backoff_s * 2 ** (attempts - 1))
    return float(delay / 2 + rng.uniform(0, delay / 2))


def _send(
    channel: Channel, payload: dict[str, Any], key: str, client: httpx.Client, now: datetime
) -> None:
    if channel.kind == "webhook":
        channels.send_webhook(channel, payload, key, client, now)
    elif channel.kind == "alertmanager":
        channels.send_alertmanager(channel, payload, key, client, now)
    else:
        channels.send_email(channel, payload, key, now)


def deliver_due(
    conn: psycopg.Connection[Any],
    notify: NotifySettings,
    client: httpx.Client,
    now: datetime,
    rng: random.Random,
    limit: int = 100,
) -> list[tuple[str, str]]:
    """Try every due notification once; return (key, new status) of each tried."""
    by_name = {c.name: c for c in notify.channels}
    done: list[tuple[str, str]] = []
    for _ in range(limit):
        with conn.transaction():
            row = conn.execute(
                "SELECT idempotency_key, channel, attempts, payload FROM notifications"
                " WHERE status = 'pending' AND next_attempt_at <= %s"
                " ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                (now,),
            ).fetchone()
            if row is None:
                break
            key, name, attempts, payload = row
            attempts += 1
            channel = by_name.get(name)
            try:
                if channel is None:
                    raise LookupError(f"no channel named {name!r} in alerting.notify.channels")
                _send(channel, payload, key, client, now)
            except (httpx.HTTPError, smtplib.SMTPException, OSError, LookupError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:1000]
                dead = channel is None or attempts >= channel.max_attempts
                retry_at = (
                    now
                    if channel is None
                    else now + timedelta(seconds=backoff_s(channel, attempts, rng))
                )
                status = "dead" if dead else "pending"
                conn.execute(
                    "UPDATE notifications SET status = %s, attempts = %s, last_error = %s,"
                    " next_attempt_at = %s WHERE idempotency_key = %s",
                    (status, attempts, error, retry_at, key),
                )
                log.log(
                    logging.ERROR if dead else logging.WARNING,
                    "notification %s attempt %d failed%s: %s",
                    key,
                    attempts,
                    " - dead-lettered" if dead else "",
                    error,
                )
                metrics.NOTIFICATIONS.labels(name, "dead" if dead else "retry").inc()
                done.append((key, status))
                continue
            conn.execute(
                "UPDATE notifications SET status = 'sent', attempts = %s, sent_at = %s,"
                " last_error = NULL WHERE idempotency_key = %s",
                (attempts, now, key),
            )
            metrics.NOTIFICATIONS.labels(name, "sent").inc()
            done.append((key, "sent"))
    return done


async def run_notifier(
    conninfo: str,
    notify: NotifySettings,
    clock: Callable[[], datetime],
    stop: asyncio.Event,
) -> None:
    """Escalate and deliver every ``notify.every_s`` until ``stop`` is set."""
    if not notify.routes:
        return
    conn = await asyncio.to_thread(connect, conninfo, True)
    rng = random.Random()
    try:
        with httpx.Client() as client:
            while not stop.is_set():
                try:
                    # a new connection when the server closed ours (restart, kill)
                    conn = await asyncio.to_thread(reopen, conn, conninfo, True)
                    await asyncio.to_thread(escalate, conn, notify, clock())
                    await asyncio.to_thread(deliver_due, conn, notify, client, clock(), rng)
                except psycopg.Error:
                    log.exception("notification pass failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), notify.every_s)
    finally:
        conn.close()
