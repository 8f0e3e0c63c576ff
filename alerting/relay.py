"""Publish the change log to the Kafka ``alarms`` topic (transactional outbox).

Every alarm, incident and flood change, whether a condition event or an operator
made it, is in ``change_log``; this task sends each one to Kafka in id order and then
records how far it got. At least once: after a crash between the send and the
record, a change is sent again with the same ``change_id`` (consumers dedupe on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import psycopg
from aiokafka.errors import KafkaError

from alerting import changes, metrics
from alerting.context import connect, reopen
from alerting.listen import ChangeListener, Wakeup
from common import kafka as kafka_clients
from common.settings import DatabaseSettings, KafkaSettings

log = logging.getLogger(__name__)
_NAME = "alarms-topic"


def _pending(conn: psycopg.Connection[Any]) -> tuple[int, list[tuple[int, str, str]]]:
    metrics.RELAY_READS.inc()
    row = conn.execute("SELECT last_id FROM change_relay WHERE name = %s", (_NAME,)).fetchone()
    if row is None:  # the first run on this database
        conn.execute("INSERT INTO change_relay (name) VALUES (%s) ON CONFLICT DO NOTHING", (_NAME,))
    last = int(row[0]) if row else 0
    return last, changes.since(conn, last, 500)


def _record(conn: psycopg.Connection[Any], last_id: int) -> None:
    conn.execute("UPDATE change_relay SET last_id = %s WHERE name = %s", (last_id, _NAME))


def message(change_id: int, kind: str, payload_json: str) -> tuple[bytes, bytes]:
    """(key, value) of one change: key = unit (alarms) or site, value = JSON."""
    payload = json.loads(payload_json)
    key = payload.get("unit_id") or payload.get("site_id") or ""
    value = {"change_id": change_id, "kind": kind, **payload}
    return str(key).encode(), json.dumps(value, separators=(",", ":")).encode()


async def run_relay(
    database: DatabaseSettings,
    kafka: KafkaSettings,
    stop: asyncio.Event,
    every_s: float = 0.1,
    listener: ChangeListener | None = None,
    fallback_poll_s: float = 1.0,
    min_gap_s: float = 0.1,
) -> None:
    """Relay until ``stop`` is set."""
    if not await kafka_clients.wait_for_topics(kafka, stop, "alarm relay", kafka.alarms_topic):
        return
    conninfo = database.conninfo()
    conn = await asyncio.to_thread(connect, conninfo, True)
    producer = kafka_clients.make_producer(kafka)
    await kafka_clients.start_client(producer, kafka)
    wakeup = Wakeup(listener, every_s, fallback_poll_s)
    last_read = 0.0
    try:
        while not stop.is_set():
            wait_s = 0.0  # at least this long (after a failure), else until woken
            # woken again soon after the last read: let more commits gather first
            spacing = last_read + min_gap_s - time.monotonic()
            if spacing > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), spacing)
            wakeup.arm()  # before the read: a commit notified during it is not missed
            last_read = time.monotonic()
            try:
                # a new connection when the server closed ours (restart, kill)
                conn = await asyncio.to_thread(reopen, conn, conninfo, True)
                _last, rows = await asyncio.to_thread(_pending, conn)
                if rows:
                    sends = []
                    for change_id, kind, payload in rows:
                        key, value = message(change_id, kind, payload)
                        sends.append(await producer.send(kafka.alarms_topic, value, key=key))
                    await asyncio.gather(*sends)  # acknowledged (acks=all) before recording
                    # a failure here sends these again later: at least once, by design
                    await asyncio.to_thread(_record, conn, rows[-1][0])
                    continue
            except (psycopg.Error, KafkaError) as exc:
                log.warning("relaying the change log failed (%s); retrying", exc)
                wait_s = max(every_s, 1.0)
            if wait_s:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait_s)
            else:
                await wakeup.wait(stop)
    finally:
        wakeup.close()
        await producer.stop()
        conn.close()
