"""A stalled database holds up neither detection nor alarms: a poll's condition events go
to Kafka before its readings are written, and the write still lands exactly once."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from common.settings import BaseProcessSettings
from tests.fixtures.processes import (
    Publisher,
    ServiceFactory,
    metric,
    read_topic,
    start_subscribed_bridge,
    wait_until,
)
from tests.fixtures.services import Isolation, database
from tests.fixtures.services import readings_totals as totals

pytestmark = pytest.mark.integration

TOPIC = "haibin-terminal/TK101/TK101-PT-01"  # H 14, on-delay 15 s (examples/plant.yaml)


def publish(publisher: Publisher, iso: Isolation, start_ms: int, values: list[float]) -> float:
    for i, value in enumerate(values):
        payload = json.dumps({"ts": start_ms + i * 1000, "value": value})
        publisher.publish(f"{iso.mqtt_prefix}/{TOPIC}", payload)
    return sum(values)


def high_events(stack: BaseProcessSettings, iso: Isolation) -> list[dict]:
    """The `conditions` topic's H-limit events of TK101-PT-01, in order."""
    try:
        records = read_topic(stack, iso.conditions_topic, 1, timeout_s=5)
    except AssertionError:  # nothing on the topic yet
        return []
    events = [json.loads(r.value) for r in records]
    return [e for e in events if e["sensors"] == ["TK101-PT-01"] and e["condition"] == "H"]


def test_the_alarm_goes_out_while_the_database_is_stalled(
    stack: BaseProcessSettings,
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
    db: psycopg.Connection,
) -> None:
    start_subscribed_bridge(service_factory)
    service_factory("detectors")
    start_ms = int(time.time() * 1000) - 120_000
    normal = publish(publisher, isolation, start_ms, [8.0] * 5)
    wait_until(lambda: totals(db)[0] == 5, 60, "the normal readings stored")

    # Another session holds the readings table: the worker's next write waits for it.
    with psycopg.connect(database(stack, isolation).conninfo()) as blocker:
        blocker.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
        high = publish(publisher, isolation, start_ms + 5_000, [14.8] * 20)  # H after 15 s
        events = wait_until(lambda: high_events(stack, isolation), 60, "the H event on Kafka")
        assert [e["state"] for e in events] == ["active"]
        # the readings that raised it are not stored yet: the alarm did not wait for them
        assert blocker.execute("SELECT count(*) FROM readings").fetchone()[0] == 5
        blocker.rollback()

    expected = (25, round(normal + high, 6))
    wait_until(lambda: totals(db) == expected, 60, f"exactly {expected} (count, sum)")
    stored = db.execute(
        "SELECT event_id::text, published FROM anomalies"
        " WHERE sensor_id = 'TK101-PT-01' AND condition = 'H'"
    ).fetchall()
    assert stored == [(events[0]["event_id"], True)]  # written with its poll, as sent
    time.sleep(1)
    assert [e["event_id"] for e in high_events(stack, isolation)] == [events[0]["event_id"]]


DETECTED = "chemwatch_detectors_poll_readings_sum"  # readings detected, counted per poll
WAITS = "chemwatch_detectors_backpressure_seconds_count"


def test_detection_stops_at_the_queue_bound_and_resumes_when_the_write_commits(
    stack: BaseProcessSettings,
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
    db: psycopg.Connection,
) -> None:
    """With ``max_queued_readings`` at 1 and the readings table locked, the worker holds
    one write in flight and a poll queued, then stands still rather than queue more;
    it goes on once the write commits, and every reading lands exactly once."""
    start_subscribed_bridge(service_factory)
    worker = service_factory("detectors", env={"CHEMWATCH_DETECTORS__MAX_QUEUED_READINGS": "1"})
    start_ms = int(time.time() * 1000) - 120_000
    total = publish(publisher, isolation, start_ms, [8.0])
    wait_until(lambda: totals(db)[0] == 1, 60, "the first reading stored")

    with psycopg.connect(database(stack, isolation).conninfo()) as blocker:
        blocker.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
        # A second apart, so each is a poll of its own: the 2nd blocks in its write, the
        # 3rd is queued, the 4th crosses the bound; the 5th and 6th stay in Kafka.
        for i in range(1, 6):
            total += publish(publisher, isolation, start_ms + i * 1000, [8.0 + i / 10])
            time.sleep(1.0)
        wait_until(lambda: metric(worker, DETECTED) >= 4, 30, "four readings detected")
        time.sleep(3)  # the 5th and 6th would be detected within a second otherwise
        assert metric(worker, DETECTED) == 4
        assert metric(worker, WAITS) == 0  # counted when a wait ends
        blocker.rollback()

    expected = (6, round(total, 6))
    wait_until(lambda: totals(db) == expected, 60, f"exactly {expected} (count, sum)")
    assert metric(worker, DETECTED) == 6
    assert metric(worker, WAITS) >= 1
