"""A detector worker killed between consuming and committing loses and duplicates nothing."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from tests.fixtures.processes import Publisher, ServiceFactory, wait_until
from tests.fixtures.services import Isolation
from tests.fixtures.services import readings_totals as totals

pytestmark = pytest.mark.integration

SENSORS = [("TK101", "TK101-PT-01"), ("TK101", "TK101-TT-01"), ("TK102", "TK102-PT-01")]


def publish_round(publisher: Publisher, iso: Isolation, start_ms: int, n: int) -> list[float]:
    values = []
    for i in range(n):
        unit, sensor = SENSORS[i % len(SENSORS)]
        value = round(5 + (i % 17) * 0.25, 2)
        publisher.publish(
            f"{iso.mqtt_prefix}/haibin-terminal/{unit}/{sensor}",
            json.dumps({"ts": start_ms + i, "value": value}),
        )
        values.append(value)
    return values


def first_round_committed(
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
    db: psycopg.Connection,
) -> tuple[int, list[float]]:
    """A bridge running, 150 readings committed by a worker that then stops cleanly;
    returns the round's start (ms) and its values. The bridge keeps running."""
    ingest = service_factory("ingest")
    wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")
    start_ms = int(time.time() * 1000) - 60_000
    values = publish_round(publisher, isolation, start_ms, 150)
    worker = service_factory("detectors")
    wait_until(lambda: totals(db)[0] == 150, 60, "round 1 in the database")
    assert worker.stop() == 0
    return start_ms, values


def test_kill_before_commit_loses_and_duplicates_nothing(
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
    db: psycopg.Connection,
) -> None:
    # Round 1 is processed and committed normally.
    start_ms, first = first_round_committed(isolation, service_factory, publisher, db)

    # Round 2: the worker dies (exit 137, like kill -9) right before its first commit.
    second = publish_round(publisher, isolation, start_ms + 1000, 150)
    crashing = service_factory("detectors", "--fault-exit-before-commit", "1")
    assert crashing.proc.wait(60) == 137, crashing.log()
    assert "fault injection" in crashing.log()
    assert totals(db)[0] == 150  # the half-done transaction left nothing behind

    # A fresh worker resumes from the offsets stored with the data.
    service_factory("detectors")
    expected = (300, round(sum(first) + sum(second), 6))
    wait_until(lambda: totals(db) == expected, 60, f"exactly {expected} (count, sum)")
    time.sleep(2)  # give a duplicate every chance to show up
    assert totals(db) == expected
    offsets = db.execute("SELECT sum(next_offset) FROM consumer_offsets").fetchone()[0]
    assert offsets > 0
    # The rollups, deferred by default (folded after each batch, migration 0041), hold
    # every reading once: the crashed batch left no pending aggregates behind.
    for table in ("readings_1m", "readings_1h"):
        wait_until(lambda t=table: rollup_totals(db, t) == expected, 30, f"{table} folded")
    assert db.execute("SELECT count(*) FROM rollup_pending").fetchone()[0] == 0


def rollup_totals(db: psycopg.Connection, table: str) -> tuple[int, float]:
    """(readings, sum of values) as the rollup table counts them."""
    count, total = db.execute(
        f"SELECT coalesce(sum(samples), 0), coalesce(sum(value_sum), 0) FROM {table}"
    ).fetchone()
    return int(count), round(float(total), 6)


def test_a_replayed_poll_is_redone_on_the_exact_path(
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
    db: psycopg.Connection,
) -> None:
    """The worker COPYs without a savepoint; when a poll holds stored rows (its offsets
    were checkpointed before them), the transaction aborts and is redone exactly."""
    start_ms, first = first_round_committed(isolation, service_factory, publisher, db)
    db.execute("UPDATE consumer_offsets SET next_offset = 0")  # as if never checkpointed

    second = publish_round(publisher, isolation, start_ms + 1000, 30)
    again = service_factory("detectors")
    expected = (180, round(sum(first) + sum(second), 6))
    wait_until(lambda: totals(db) == expected, 60, f"exactly {expected} (count, sum)")
    wait_until(lambda: "replayed poll" in again.log(), 10, "the replay taken the exact way")
    time.sleep(1)
    assert totals(db) == expected
