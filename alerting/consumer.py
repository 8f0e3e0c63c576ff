"""Consume condition events, apply them to alarms, announce the changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import psycopg

from alerting import changes as change_log
from alerting import metrics
from alerting.context import connect, reopen
from alerting.settings import AlertingSettings
from alerting.store import Change, Context, apply_event
from common import kafka as kafka_clients
from common import store
from common.conditions import ConditionEvent, ConditionFormatError

log = logging.getLogger("alerting.alarms")


class ConditionConsumer:
    """Applies each event once in PostgreSQL, then commits its Kafka offset."""

    def __init__(self, settings: AlertingSettings, ctx: Context) -> None:
        self.settings = settings
        self.ctx = ctx
        self.running = False

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set."""
        kafka = self.settings.kafka
        # The API keeps serving the alarms already stored while Kafka is away.
        topics = (kafka.conditions_topic, kafka.alarms_topic)
        if not await kafka_clients.wait_for_topics(kafka, stop, "alerting consumer", *topics):
            return
        conninfo = self.settings.database.conninfo()
        conn = await asyncio.to_thread(connect, conninfo)
        opts = self.settings.alerting
        consumer = kafka_clients.make_consumer(
            kafka, opts.group_id, kafka.conditions_topic, fetch_max_wait_ms=opts.fetch_max_wait_ms
        )
        await kafka_clients.start_client(consumer, kafka)
        self.running = True
        committing: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                polled = await consumer.getmany(timeout_ms=200, max_records=500)
                await kafka_clients.record_lag(consumer, metrics.KAFKA_LAG)
                records = [r for batch in polled.values() for r in batch]
                if not records:
                    continue
                try:
                    changes = await asyncio.to_thread(_apply_all, conn, records, self.ctx)
                except store.UNAVAILABLE as exc:
                    # Nothing committed to Kafka: wait for the database, then apply the same
                    # records again (events already applied are skipped by event id).
                    conn, applied = await self._wait_for_database(
                        conn, conninfo, exc, records, stop
                    )
                    if applied:
                        committing = await _commit_after(committing, consumer, polled)
                    continue
                for change in changes:
                    _announce(change)
                # the `alarms` topic is fed from the change log by alerting.relay
                committing = await _commit_after(committing, consumer, polled)
        finally:
            self.running = False
            if committing is not None:
                with contextlib.suppress(Exception):
                    await committing
            await consumer.stop()
            conn.close()

    async def _wait_for_database(
        self,
        conn: psycopg.Connection[Any],
        conninfo: str,
        exc: Exception,
        records: list[Any],
        stop: asyncio.Event,
    ) -> tuple[psycopg.Connection[Any], bool]:
        """Retry ``records`` with backoff until they are applied (True) or ``stop`` is
        set (False); the connection is replaced when the server closed it."""
        delay = 0.5
        while not stop.is_set():
            log.warning("database unavailable (%s); retrying in %.1f s", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10.0)
            try:
                conn = await asyncio.to_thread(reopen, conn, conninfo)
                for change in await asyncio.to_thread(_apply_all, conn, records, self.ctx):
                    _announce(change)
                log.info("database back; applied the pending events")
                return conn, True
            except store.UNAVAILABLE as again:
                exc = again
        return conn, False


async def _commit_after(
    previous: asyncio.Task[None] | None, consumer: Any, polled: dict[Any, list[Any]]
) -> asyncio.Task[None]:
    """Start committing the offsets after ``polled`` once ``previous`` is done.

    The offset commit is one Kafka round trip; the next events need not wait for it.
    One commit at a time keeps them in order (a repeat after a crash is applied once).
    The offsets are explicit: the consumer's own position may have moved on by the time
    a commit runs.
    """
    if previous is not None:
        await previous
    offsets = {tp: records[-1].offset + 1 for tp, records in polled.items() if records}
    return asyncio.create_task(consumer.commit(offsets))


# Events applied per database transaction: one commit (and fsync) per chunk instead of
# per event roughly doubles throughput under load; the chunk bounds the added latency.
# (Ending chunks after 50 ms as well was tried and made the alarm path slower on a busy
# machine, where a commit costs tens of ms: docs/bench-e2e.md, "Alarm latency".)
CHUNK = 50


# A deadlock or serialization failure (e.g. with the shelving task or an operator action
# on the same alarms) rolls the whole chunk back; applying it again is safe because
# events are applied once by id.
RETRIABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
MAX_ATTEMPTS = 8


def _apply_all(conn: psycopg.Connection[Any], records: list[Any], ctx: Context) -> list[Change]:
    changes: list[Change] = []
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                # No savepoint per event: any error rolls the whole chunk back (and it is
                # applied again), so they would only cost two round trips per event.
                with change_log.transaction(conn, savepoints=False):
                    changes += _apply_chunk(conn, chunk, ctx)
                break
            except RETRIABLE as exc:
                if attempt == MAX_ATTEMPTS:
                    raise
                delay = 0.02 * 2**attempt * (0.5 + random.random())
                log.warning("retrying %d events after %s (attempt %d)", len(chunk), exc, attempt)
                time.sleep(delay)
    return changes


def _apply_chunk(conn: psycopg.Connection[Any], records: list[Any], ctx: Context) -> list[Change]:
    changes = []
    for record in records:
        try:
            event = ConditionEvent.from_json(record.value)
        except ConditionFormatError as exc:
            metrics.EVENTS.labels("invalid").inc()
            log.error(
                "skipping invalid condition event at %s/%d@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            continue
        change = apply_event(conn, event, ctx)
        metrics.EVENTS.labels("applied" if change else "ignored").inc()
        if change:
            metrics.CHANGES.labels(change.to_state).inc()
            changes.append(change)
    return changes


def _announce(change: Change) -> None:
    e = change.event
    if e is None:
        return
    marker = "ALARM" if e.state == "active" else "CLEAR"
    log.warning(
        "%s %-8s %-6s %s -> %s  %s",
        marker,
        e.severity.upper(),
        e.unit,
        change.from_state or "NEW",
        change.to_state,
        e.explanation,
    )
