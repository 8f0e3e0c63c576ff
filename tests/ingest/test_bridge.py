"""The bridge on real Mosquitto and Kafka: dead letters with reasons, valid traffic intact."""

from __future__ import annotations

import json
import time

import pytest

from common.deadletter import DeadLetter
from common.readings import decode_batch
from common.settings import BaseProcessSettings
from tests.fixtures.processes import Publisher, ServiceFactory, read_topic, wait_until
from tests.fixtures.services import Isolation

pytestmark = pytest.mark.integration


def test_malformed_payloads_go_to_the_dead_letter_topic(
    stack: BaseProcessSettings,
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
) -> None:
    ingest = service_factory("ingest")
    wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")
    base = f"{isolation.mqtt_prefix}/haibin-terminal/TK101"
    now_ms = int(time.time() * 1000)
    bad = [
        (f"{base}/TK101-PT-01", b"{not json", "not_json"),
        (f"{base}/TK101-PT-01", json.dumps({"ts": now_ms}).encode(), "missing_field"),
        (f"{base}/TK101-PT-01", json.dumps({"ts": now_ms, "value": "7.1"}).encode(), "wrong_type"),
        (
            f"{base}/NO-SUCH-SENSOR",
            json.dumps({"ts": now_ms, "value": 7.1}).encode(),
            "unknown_sensor",
        ),
    ]
    for topic, payload, _reason in bad:
        publisher.publish(topic, payload)
    publisher.publish(f"{base}/TK101-PT-01", json.dumps({"ts": now_ms, "value": 7.5}))

    dlq = read_topic(stack, isolation.dlq_topic, 4)
    letters = [DeadLetter.from_json(r.value) for r in dlq]
    # keyed by MQTT topic, so spread over partitions: compare without order
    assert sorted((d.topic, d.payload, d.reason) for d in letters) == sorted(bad)
    assert all(d.message for d in letters)
    assert all(r.key.decode() == d.topic for r, d in zip(dlq, letters, strict=True))

    records = read_topic(stack, isolation.readings_topic, 1)
    batch = decode_batch(records[0].value)
    assert (batch.unit_id, list(batch.sensors()), list(batch.value)) == (
        "TK101",
        ["TK101-PT-01"],
        [7.5],
    )
    assert records[0].key == b"TK101"
    assert ingest.alive(), ingest.log()
