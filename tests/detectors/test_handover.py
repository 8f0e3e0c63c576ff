"""State moves with partitions: a worker killed mid-breach, a restart keeps the baseline."""

from __future__ import annotations

import json
import re
import time

import psycopg
import pytest
from aiokafka.partitioner import murmur2

from tests.fixtures.processes import Publisher, Service, ServiceFactory, wait_until
from tests.fixtures.services import Isolation

pytestmark = pytest.mark.integration

SITE = "haibin-terminal"


def publish(publisher: Publisher, iso: Isolation, unit: str, sensor: str, rows: list) -> None:
    for ts_ms, value in rows:
        publisher.publish(
            f"{iso.mqtt_prefix}/{SITE}/{unit}/{sensor}",
            json.dumps({"ts": ts_ms, "value": value}),
        )


def assigned(service: Service) -> set[int]:
    found = re.findall(r"assigned \[([0-9, ]*)\]", service.log())
    return {int(p) for p in found[-1].split(",") if p.strip()} if found else set()


def limit_events(db: psycopg.Connection, sensor: str) -> list[tuple[str, str]]:
    rows = db.execute(
        "SELECT condition, state FROM anomalies WHERE sensor_id = %s AND detector = 'limits'"
        " ORDER BY time, condition",
        (sensor,),
    ).fetchall()
    return [(c, s) for c, s in rows]


def test_survivor_takes_over_a_breach_and_reports_it_once(
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
    db: psycopg.Connection,
) -> None:
    unit, sensor = "TK101", "TK101-PT-01"  # H 14, HH 15.5, deadband 0.5, on-delay 15 s
    partitions = int(isolation.env["CHEMWATCH_KAFKA__PARTITIONS"])
    partition = (murmur2(unit.encode()) & 0x7FFFFFFF) % partitions
    ingest = service_factory("ingest")
    wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")
    workers = [service_factory("detectors"), service_factory("detectors")]
    wait_until(
        lambda: (
            all(assigned(w) for w in workers)
            and set().union(*(assigned(w) for w in workers)) == set(range(partitions))
        ),
        90,
        "both workers to share the partitions",
    )
    owner = next(w for w in workers if partition in assigned(w))
    survivor = next(w for w in workers if w is not owner)

    t0 = int(time.time() * 1000) - 300_000  # source time, 1 s apart
    publish(publisher, isolation, unit, sensor, [(t0 + i * 1000, 16.2) for i in range(25)])
    wait_until(
        lambda: {("H", "active"), ("HH", "active")} <= set(limit_events(db, sensor)),
        60,
        "the breach to be reported by its owner",
    )

    def checkpointed_active() -> bool:
        row = db.execute(
            "SELECT state FROM detector_state WHERE unit_id = %s AND detector = 'suite'", (unit,)
        ).fetchone()
        if row is None:
            return False
        limits = row[0]["limits"]
        return limits["H.active_since"][limits["sensors"].index(sensor)] != 0

    # Kill after the owner's periodic checkpoint holds the active alarm: the survivor must
    # restore it (not re-derive it) and only report the clears.
    wait_until(checkpointed_active, 30, "the owner's checkpoint of the active alarm")
    owner.kill()  # SIGKILL mid-breach

    # The breach persists, then ends; the survivor must take the partition over.
    rest = [(t0 + i * 1000, 16.2) for i in range(25, 40)] + [
        (t0 + i * 1000, 8.0) for i in range(40, 45)
    ]
    publish(publisher, isolation, unit, sensor, rest)
    wait_until(lambda: partition in assigned(survivor), 60, "the survivor to take the partition")
    wait_until(lambda: len(limit_events(db, sensor)) >= 4, 60, "the clears")
    time.sleep(2)  # a doubled or re-raised event would show up now
    assert sorted(limit_events(db, sensor)) == [
        ("H", "active"),
        ("H", "cleared"),
        ("HH", "active"),
        ("HH", "cleared"),
    ]
    count = db.execute("SELECT count(*) FROM readings WHERE sensor_id = %s", (sensor,)).fetchone()
    assert count[0] == 45  # every reading exactly once
    taken = re.findall(
        r"assigned \[[0-9, ]*\]; resumed from stored offsets (\{.*\})", survivor.log()
    )
    assert f"{partition}: " in taken[-1]  # resumed partition from the owner's checkpoint
    assert "condition active H:" not in survivor.log()  # restored, not re-raised


def test_ewma_baseline_survives_a_restart(
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
    db: psycopg.Connection,
) -> None:
    unit, sensor = "TK101", "TK101-TT-01"  # temperature: drift detection on, warm-up 30
    ingest = service_factory("ingest")
    wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")
    t0 = int(time.time() * 1000) - 600_000
    normal = [(t0 + i * 5000, 20.0 + 0.1 * ((i * 7) % 5 - 2)) for i in range(40)]
    worker = service_factory("detectors")
    publish(publisher, isolation, unit, sensor, normal)

    def drift_state() -> dict | None:
        row = db.execute(
            "SELECT state FROM detector_state WHERE unit_id = %s AND detector = 'suite'", (unit,)
        ).fetchone()
        if row is None:
            return None
        drift = row[0]["drift"]
        i = drift["sensors"].index(sensor)
        return {"count": drift["count"][i], "centre": drift["centre"][i]}

    wait_until(lambda: (drift_state() or {}).get("count") == 30, 60, "the baseline learnt")
    before = drift_state()
    assert before is not None
    assert before["centre"] == pytest.approx(20.0, abs=0.2)
    assert worker.stop() == 0

    # A fresh worker: a 2 degC step must be judged against the restored baseline at once
    # (a baseline learnt from scratch would need 30 readings of warm-up first).
    service_factory("detectors")
    step = [(t0 + (40 + i) * 5000, 22.0) for i in range(12)]
    publish(publisher, isolation, unit, sensor, step)
    drift_events = wait_until(
        lambda: db.execute(
            "SELECT condition FROM anomalies WHERE sensor_id = %s AND detector = 'drift'"
            " AND state = 'active'",
            (sensor,),
        ).fetchall(),
        60,
        "drift raised against the restored baseline",
    )
    assert {r[0] for r in drift_events} <= {"DRIFT", "SHIFT"}
    after = drift_state()
    assert after is not None
    assert after["count"] == 30
    assert after["centre"] == pytest.approx(before["centre"], abs=0.05)  # step not learnt
