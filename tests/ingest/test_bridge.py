"""The real bridge on real Mosquitto and Kafka: dead letters with reasons, valid traffic
intact, clean SIGTERM."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from common.deadletter import DeadLetter
from common.readings import decode_batch
from common.settings import BaseProcessSettings
from tests.fixtures.processes import Publisher, ServiceFactory, read_topic, wait_until
from tests.fixtures.services import Isolation

pytestmark = pytest.mark.integration

SITE = "haibin-terminal"
MAX_PAYLOAD = 4096


def _j(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def malformed(prefix: str, now_ms: int) -> list[tuple[str, bytes, str, int | None]]:
    """(topic, payload, expected reason, batch index): 45+ distinct ways to be wrong."""
    base = f"{prefix}/{SITE}/TK101"
    t = f"{base}/TK101-PT-01"
    ok = {"ts": now_ms, "value": 7.0}
    cases: list[tuple[str, bytes, str, int | None]] = [
        (t, b"{not json", "not_json", None),
        (t, b"\xff\xfe", "not_json", None),
        (t, b"", "not_json", None),
        (t, b'{"ts": 1, "value": 7.0', "not_json", None),
        (t, b"[" * 1500 + b"]" * 1500, "not_json", None),
        (t, b"{'ts': 1, 'value': 2}", "not_json", None),
        (t, b"[1, 2]", "wrong_type", None),
        (t, b'"7"', "wrong_type", None),
        (t, b"null", "wrong_type", None),
        (t, b"42", "wrong_type", None),
        (t, _j({"ts": now_ms}), "missing_field", None),
        (t, _j({"value": 7.0}), "missing_field", None),
        (t, _j({"ts": now_ms, "value": "7"}), "wrong_type", None),
        (t, _j({"ts": now_ms, "value": True}), "wrong_type", None),
        (t, _j({"ts": now_ms, "value": None}), "wrong_type", None),
        (t, _j({"ts": now_ms, "value": [7]}), "wrong_type", None),
        (t, _j({"ts": now_ms, "value": {"v": 7}}), "wrong_type", None),
        (t, b'{"ts": 1, "value": NaN}', "not_finite", None),
        (t, b'{"ts": 1, "value": Infinity}', "not_finite", None),
        (t, b'{"ts": 1, "value": -Infinity}', "not_finite", None),
        (t, b'{"ts": 1, "value": 1e999}', "not_finite", None),
        (t, _j({"ts": now_ms, "value": 26.0}), "out_of_range", None),
        (t, _j({"ts": now_ms, "value": -0.5}), "out_of_range", None),
        (t, _j({"ts": now_ms, "value": 3000, "unit": "kPa(g)"}), "out_of_range", None),
        (t, _j({"ts": now_ms + 3_600_000, "value": 7.0}), "ts_future", None),
        (t, _j({"ts": now_ms - 2 * 86_400_000, "value": 7.0}), "ts_too_old", None),
        (t, _j({"ts": "yesterday", "value": 7.0}), "bad_timestamp", None),
        (t, _j({"ts": "2026-11-29T03:00:00", "value": 7.0}), "bad_timestamp", None),
        (t, _j({"ts": -5, "value": 7.0}), "bad_timestamp", None),
        (t, _j({"ts": [1], "value": 7.0}), "bad_timestamp", None),
        (t, _j({"ts": True, "value": 7.0}), "bad_timestamp", None),
        (t, _j({"ts": 1e20, "value": 7.0}), "bad_timestamp", None),
        (t, _j(ok | {"quality": "great"}), "bad_quality", None),
        (t, _j(ok | {"quality": 1}), "bad_quality", None),
        (t, _j(ok | {"unit": "furlongs"}), "unknown_unit", None),
        (t, _j(ok | {"unit": "bar"}), "incompatible_unit", None),
        (t, _j(ok | {"unit": "degC"}), "incompatible_unit", None),
        (t, _j(ok | {"unit": 5}), "wrong_type", None),
        (f"{base}/NOPE-1", _j(ok), "unknown_sensor", None),
        (f"{prefix}/other-site/TK101/TK101-PT-01", _j(ok), "topic_mismatch", None),
        (f"{prefix}/{SITE}/TK102/TK101-PT-01", _j(ok), "topic_mismatch", None),
        (f"{prefix}//TK101/TK101-PT-01", _j(ok), "bad_topic", None),
        (f"{base}/", _j(ok), "bad_topic", None),
        (t, b'{"ts": 1, "value": 7, "pad": "' + b"x" * MAX_PAYLOAD + b'"}', "oversized", None),
        (base, _j({"readings": []}), "missing_field", None),
        (base, _j({"readings": "x"}), "missing_field", None),
        (base, _j({"nope": 1}), "missing_field", None),
        (base, _j({"readings": [5]}), "wrong_type", 0),
        (base, _j({"readings": [{"value": 1, "ts": now_ms}]}), "missing_field", 0),
        (base, _j({"readings": [{"sensor": 7, "value": 1, "ts": now_ms}]}), "missing_field", 0),
    ]
    return cases


def test_malformed_payloads_go_to_the_dead_letter_topic_and_valid_traffic_is_intact(
    stack: BaseProcessSettings,
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
) -> None:
    ingest = service_factory(
        "ingest", env={"CHEMWATCH_INGEST__MAX_PAYLOAD_BYTES": str(MAX_PAYLOAD)}
    )
    wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")
    prefix = isolation.mqtt_prefix
    now_ms = int(time.time() * 1000)
    bad = malformed(prefix, now_ms)
    assert len({(t, p) for t, p, _, _ in bad}) >= 40
    good_topic = f"{prefix}/{SITE}/TK101/TK101-PT-01"
    expected_readings: set[tuple[str, int, float]] = set()
    for i, (topic, payload, _reason, _index) in enumerate(bad):
        publisher.publish(topic, payload)
        value = 5.0 + i / 100
        ts = now_ms + i
        if i % 2:  # every other valid reading in kPa(g): converted to bar(g)
            doc = {"ts": ts, "value": value * 100, "unit": "kPa(g)"}
        else:
            doc = {"ts": ts, "value": value}
        publisher.publish(good_topic, _j(doc))
        expected_readings.add(("TK101-PT-01", ts * 1_000_000, round(value, 9)))
    # a gateway batch with good and bad entries: the good ones pass, each bad one is a letter
    batch_topic = f"{prefix}/{SITE}/TK101"
    mixed = _j(
        {
            "readings": [
                {"sensor": "TK101-TT-01", "ts": now_ms, "value": 21.5},
                {"sensor": "TK101-TT-01", "ts": now_ms + 1, "value": "hot"},
                {"sensor": "TK101-TT-02", "ts": now_ms, "value": 69.8, "unit": "degF"},
                {"sensor": "TK201-PT-01", "ts": now_ms, "value": 7.0},
                {"sensor": "TK101-XX-99", "ts": now_ms, "value": 7.0},
            ]
        }
    )
    publisher.publish(batch_topic, mixed)
    bad += [
        (batch_topic, mixed, "wrong_type", 1),
        (batch_topic, mixed, "topic_mismatch", 3),
        (batch_topic, mixed, "unknown_sensor", 4),
    ]
    expected_readings |= {("TK101-TT-01", now_ms * 1_000_000, 21.5)}
    expected_readings |= {("TK101-TT-02", now_ms * 1_000_000, 21.0)}

    dlq = read_topic(stack, isolation.dlq_topic, len(bad), timeout_s=60)
    letters = [DeadLetter.from_json(r.value) for r in dlq]
    assert len(letters) == len(bad)
    # keyed by MQTT topic, so spread over partitions: compare without order
    got = sorted((d.topic, d.payload, d.reason, d.index) for d in letters)
    assert got == sorted(bad, key=lambda b: (b[0], b[1], b[2], b[3] if b[3] is not None else -1))
    assert all(d.message for d in letters)
    assert all(r.key.decode() == d.topic for r, d in zip(dlq, letters, strict=True))

    readings: set[tuple[str, int, float]] = set()
    count = 0

    def all_readings() -> bool:
        nonlocal readings, count
        records = read_topic(stack, isolation.readings_topic, 1)
        batches = [decode_batch(r.value) for r in records]
        count = sum(len(b) for b in batches)
        readings = {
            (s, int(t), round(float(v), 9))
            for b in batches
            for s, t, v in zip(b.sensors(), b.ts_ns, b.value, strict=True)
        }
        assert all(r.key == b"TK101" for r in records)
        return count >= len(expected_readings)

    wait_until(all_readings, 60, "every valid reading on the readings topic")
    assert count == len(expected_readings)  # nothing lost, nothing duplicated
    assert readings == expected_readings
    assert ingest.alive(), ingest.log()
    assert ingest.stop() == 0, ingest.log()  # SIGTERM: flush, ack, exit 0
    assert "ingest bridge stopped" in ingest.log()
