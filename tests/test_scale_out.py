"""Scale-out correctness: two ingest bridges on one MQTT shared subscription, three
detector workers in one Kafka consumer group, one worker killed with SIGKILL under load.

Every reading published is in the database exactly once (per-sensor count and sum),
the dead worker's partitions go to the survivors, and a gas breach that started
before the kill on a unit of the killed worker is reported exactly once.
Throughput of the same layout is measured by the e2e benchmark, not here.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
import psycopg
import pytest
from aiokafka.partitioner import murmur2

from common.conditions import ConditionEvent
from common.registry import load_registry
from common.settings import BaseProcessSettings
from tests.fixtures.processes import (
    Service,
    ServiceFactory,
    latest_assignment,
    metric,
    read_topic,
    wait_until,
)
from tests.fixtures.services import ROOT, Isolation

pytestmark = [pytest.mark.integration, pytest.mark.solo]

PARTITIONS = 6
BREACH_UNIT, BREACH_SENSOR = "TK101", "TK101-GD-01"  # gas: HH 50 %LEL, on-delay 3 s
BREACH_VALUE = 62.0
ROUNDS_PER_S = 4  # one reading of every sensor per round: ~270 messages/s


@dataclass
class Load:
    """Publishes every sensor of the example plant in rounds; keeps the ledger."""

    settings: BaseProcessSettings
    prefix: str
    stop: threading.Event = field(default_factory=threading.Event)
    ledger: dict[str, tuple[int, float]] = field(
        default_factory=lambda: defaultdict(lambda: (0, 0.0))
    )
    error: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error.append(exc)

    def _run(self) -> None:
        registry = load_registry(ROOT / "examples" / "plant.yaml")
        sensors = [
            (site.id, unit.id, sensor.id, sensor.range)
            for site in registry.plant.sites
            for unit in site.units
            for sensor in unit.sensors
        ]
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="scale-out-load", protocol=mqtt.MQTTv5
        )
        client.max_queued_messages_set(0)
        client.max_inflight_messages_set(200)
        client.connect(self.settings.mqtt.host, self.settings.mqtt.port)
        client.loop_start()
        start_ms = int(time.time() * 1000) - 60_000  # unique, increasing timestamps per sensor
        round_no = 0
        pending: list[mqtt.MQTTMessageInfo] = []
        try:
            while not self.stop.is_set():
                began = time.monotonic()
                ts = start_ms + round_no * (1000 // ROUNDS_PER_S)
                for site, unit, sensor, (low, high) in sensors:
                    if sensor == BREACH_SENSOR:
                        value = BREACH_VALUE
                    else:  # low in the range: no limit alarms to wade through
                        value = round(low + (high - low) * 0.2 + (round_no % 7) * 0.01, 2)
                    payload = json.dumps({"ts": ts, "value": value})
                    pending.append(
                        client.publish(f"{self.prefix}/{site}/{unit}/{sensor}", payload, qos=1)
                    )
                    count, total = self.ledger[sensor]
                    self.ledger[sensor] = (count + 1, total + value)
                round_no += 1
                self.stop.wait(max(0.0, 1 / ROUNDS_PER_S - (time.monotonic() - began)))
            for info in pending:
                info.wait_for_publish(30)
                assert info.is_published(), "a QoS 1 publish got no PUBACK"
        finally:
            client.disconnect()
            client.loop_stop()

    def totals(self) -> dict[str, tuple[int, float]]:
        return {s: (n, round(v, 6)) for s, (n, v) in self.ledger.items()}


def _db_totals(db: psycopg.Connection) -> dict[str, tuple[int, float]]:
    rows = db.execute("SELECT sensor_id, count(*), sum(value) FROM readings GROUP BY sensor_id")
    return {s: (int(n), round(float(v), 6)) for s, n, v in rows.fetchall()}


def _shared_by(workers: list[Service]) -> bool:
    """Every partition assigned, and every worker holding some."""
    latest = [latest_assignment(w) for w in workers]
    owned = [a for a in latest if a]
    return len(owned) == len(workers) and set().union(*owned) == set(range(PARTITIONS))


def _messages(bridge: Service) -> float:
    return metric(bridge, "chemwatch_ingest_messages_total{", timeout_s=10.0)


def test_worker_killed_under_load_loses_and_duplicates_nothing(
    stack: BaseProcessSettings,
    isolation: Isolation,
    service_factory: ServiceFactory,
    db: psycopg.Connection,
) -> None:
    env = {"CHEMWATCH_KAFKA__PARTITIONS": str(PARTITIONS)}
    bridges = [
        service_factory(
            "ingest", env=env | {"CHEMWATCH_INGEST__CLIENT_ID": f"{isolation.tag}-in-{i}"}
        )
        for i in range(2)
    ]
    for bridge in bridges:
        wait_until(
            lambda b=bridge: "subscription confirmed" in b.log(), 60, f"{bridge.name} to subscribe"
        )
    workers = [service_factory("detectors", env=env) for _ in range(3)]
    try:
        wait_until(lambda: _shared_by(workers), 90, "three workers sharing the partitions")
    except AssertionError:
        raise AssertionError([re.findall(r"assigned .*", w.log()) for w in workers]) from None

    load = Load(stack, isolation.mqtt_prefix)
    publishing = threading.Thread(target=load.run, name="load")
    publishing.start()
    try:
        # The breach (on from the first round) passes its on-delay and is reported.
        wait_until(
            lambda: db.execute(
                "SELECT 1 FROM anomalies WHERE sensor_id = %s AND condition = 'HH'",
                (BREACH_SENSOR,),
            ).fetchone(),
            45,
            "the HH condition of the breach",
        )
        # Kill the worker that owns the breaching unit: its state must move, not restart.
        partition = (murmur2(BREACH_UNIT.encode()) & 0x7FFFFFFF) % PARTITIONS
        victim = next(w for w in workers if partition in (latest_assignment(w) or set()))
        victim.kill()
        survivors = [w for w in workers if w is not victim]
        wait_until(lambda: _shared_by(survivors), 60, "the survivors to take every partition")
        time.sleep(3)  # load keeps coming while the survivors carry it
    finally:
        load.stop.set()
        publishing.join(60)
    assert not load.error, load.error

    expected = load.totals()
    wait_until(lambda: _db_totals(db) == expected, 60, "every reading in the database once")
    time.sleep(2)  # a duplicate would show up now
    assert _db_totals(db) == expected
    assert sum(n for n, _ in expected.values()) > 1000

    # Both bridges carried part of the load (shared subscription).
    assert all(_messages(b) > 0 for b in bridges), [_messages(b) for b in bridges]
    # The breach, still on, was reported once: no second activation by the new owner.
    rows = db.execute(
        "SELECT condition, state FROM anomalies WHERE sensor_id = %s AND detector = 'limits'",
        (BREACH_SENSOR,),
    ).fetchall()
    assert sorted(rows) == [("H", "active"), ("HH", "active")], rows
    # On the conditions topic (what alerting applies, once per event id) likewise: a
    # republish after the crash may repeat a record, never make a second activation.
    total = int(db.execute("SELECT count(*) FROM anomalies").fetchone()[0])
    events = [
        ConditionEvent.from_json(r.value)
        for r in read_topic(stack, isolation.conditions_topic, total)
    ]
    activations = {
        e.event_id
        for e in events
        if e.sensors == (BREACH_SENSOR,) and e.detector == "limits" and e.state == "active"
    }
    assert len(activations) == 2, activations  # H and HH
    for worker in survivors:
        assert worker.alive(), worker.log()
