"""The walking skeleton on real services: MQTT -> ingest -> Kafka -> detectors ->
PostgreSQL + conditions -> alerting -> HTTP API."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from chemwatch.ports import free_port
from common.conditions import ConditionEvent
from common.settings import BaseProcessSettings
from tests.fixtures.processes import (
    Publisher,
    Service,
    ServiceFactory,
    read_topic,
    wait_until,
)
from tests.fixtures.services import Isolation

pytestmark = pytest.mark.integration

SITE, UNIT, SENSOR = "haibin-terminal", "TK101", "TK101-PT-01"  # H 14, HH 15.5 bar(g)
OPERATOR, VIEWER = "op-token-for-tests", "viewer-token-for-tests"


def start_pipeline(service_factory: ServiceFactory) -> tuple[dict[str, Service], str]:
    port = free_port()
    users = [
        {"name": "olga", "token": OPERATOR, "role": "operator"},
        {"name": "vic", "token": VIEWER, "role": "viewer"},
    ]
    alerting = service_factory(
        "alerting",
        env={"CHEMWATCH_HTTP__PORT": str(port), "CHEMWATCH_ALERTING__USERS": json.dumps(users)},
    )
    detectors = service_factory("detectors")
    ingest = service_factory("ingest")
    wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(base), 60, "alerting /healthz")
    return {"alerting": alerting, "detectors": detectors, "ingest": ingest}, base


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_reading_lands_in_the_readings_table(
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
    db: psycopg.Connection,
) -> None:
    start_pipeline(service_factory)
    # a second in the past: with microsecond=123456 a "now" could lie ahead of the ingest time
    ts = (datetime.now(UTC) - timedelta(seconds=1)).replace(microsecond=123456)
    published = time.monotonic()
    publisher.publish(
        f"{isolation.mqtt_prefix}/{SITE}/{UNIT}/{SENSOR}",
        json.dumps({"ts": ts.isoformat(), "value": 7.25}),
    )
    row = wait_until(
        lambda: db.execute(
            "SELECT time, sensor_id, unit_id, value, quality, ingest_time FROM readings"
        ).fetchone(),
        10,
        "the reading in PostgreSQL",
    )
    assert time.monotonic() - published < 10
    assert row[0] == ts
    assert row[1:5] == (SENSOR, UNIT, 7.25, 0)
    assert ts <= row[5] <= datetime.now(UTC)


def test_simulated_breach_raises_and_clears_an_alarm(
    stack: BaseProcessSettings,
    isolation: Isolation,
    service_factory: ServiceFactory,
    db: psycopg.Connection,
) -> None:
    _alerting, base = start_pipeline(service_factory)
    simulator = service_factory(
        # the breach outlasts the sensor's 15 s on-delay from the registry
        "simulators",
        "--speed",
        "2",
        "--duration",
        "22",
        "--breach",
        f"{SENSOR}=16.2@1+17",
    )
    assert simulator.proc.wait(60) == 0, simulator.log()

    anomalies = wait_until(
        lambda: (
            db.execute(
                "SELECT condition, state, value, threshold FROM anomalies WHERE sensor_id = %s"
                " AND detector = 'limits' ORDER BY time, condition",
                (SENSOR,),
            ).fetchall()
            if _count(db, SENSOR) >= 4
            else None
        ),
        30,
        "H and HH activations and clears in the anomalies table",
    )
    assert sorted((a[0], a[1]) for a in anomalies) == [
        ("H", "active"),
        ("H", "cleared"),
        ("HH", "active"),
        ("HH", "cleared"),
    ]
    assert {a[2] for a in anomalies if a[1] == "active"} == {16.2}

    # Other detectors (rate of change, sensor health) report too: take the limit alarms.
    total = int(db.execute("SELECT count(*) FROM anomalies").fetchone()[0])
    records = read_topic(stack, isolation.conditions_topic, total)
    records = [r for r in records if ConditionEvent.from_json(r.value).sensors == (SENSOR,)]
    events = [ConditionEvent.from_json(r.value) for r in records]
    events = [e for e in events if e.detector == "limits"]
    assert {(e.condition, e.state) for e in events} == {
        ("H", "active"),
        ("H", "cleared"),
        ("HH", "active"),
        ("HH", "cleared"),
    }
    assert all(r.key == UNIT.encode() for r in records)
    # The outbox empties: events Kafka acknowledged are marked published (in the worker's
    # next transaction, or within a tick when no batch comes).
    wait_until(
        lambda: db.execute("SELECT count(*) FROM anomalies WHERE NOT published").fetchone()[0] == 0,
        10,
        "every condition event marked published",
    )

    auth = {"Authorization": f"Bearer {OPERATOR}"}
    alarms = wait_until(
        lambda: (
            {a["alarm_id"]: a for a in httpx.get(f"{base}/alarms", headers=auth).json()}
            if f"{SENSOR}:HH" in httpx.get(f"{base}/alarms", headers=auth).text
            else None
        ),
        30,
        "the HH alarm at GET /alarms",
    )
    hh = alarms[f"{SENSOR}:HH"]
    # the condition returned to normal before anyone acknowledged it
    assert (hh["state"], hh["active"], hh["severity"]) == ("RTNUN", False, "high")
    assert hh["cleared_at"] is not None

    ack = httpx.post(f"{base}/alarms/{SENSOR}:HH/ack", headers=auth, json={"comment": "seen"})
    assert ack.status_code == 200, ack.text
    assert ack.json()["to_state"] == "NORMAL"
    journal = httpx.get(f"{base}/alarms/{SENSOR}:HH/journal", headers=auth).json()
    assert [j["action"] for j in journal] == ["active", "cleared", "acknowledge"]
    assert journal[-1]["username"] == "olga"


def _count(db: psycopg.Connection, sensor: str) -> int:
    return int(
        db.execute(
            "SELECT count(*) FROM anomalies WHERE sensor_id = %s AND detector = 'limits'",
            (sensor,),
        ).fetchone()[0]
    )


def test_api_requires_a_token_and_a_role(service_factory: ServiceFactory) -> None:
    _alerting, base = start_pipeline(service_factory)
    assert httpx.get(f"{base}/alarms").status_code == 401
    assert httpx.get(f"{base}/alarms", headers={"Authorization": "Bearer wrong"}).status_code == 401
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    assert httpx.get(f"{base}/alarms", headers=viewer).status_code == 200
    denied = httpx.post(f"{base}/alarms/x:HH/ack", headers=viewer, json={})
    assert denied.status_code == 403
    assert "operator" in denied.json()["detail"]
    missing = httpx.post(
        f"{base}/alarms/x:HH/ack", headers={"Authorization": f"Bearer {OPERATOR}"}, json={}
    )
    assert missing.status_code == 404


def test_services_stop_cleanly_on_sigterm(service_factory: ServiceFactory) -> None:
    services, _base = start_pipeline(service_factory)
    time.sleep(2)  # let the consumers join their groups: stopping mid-join must work too
    for name, service in services.items():
        assert service.stop() == 0, f"{name}:\n{service.log()}"
        assert "stopped" in service.log(), name
