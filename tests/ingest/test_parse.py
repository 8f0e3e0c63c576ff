"""Payload validation: every rejection has a stable reason; good readings pass intact."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from common.registry import load_registry
from ingest.parse import parse_message
from ingest.settings import IngestOptions

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = load_registry(ROOT / "examples" / "plant.yaml")
PREFIX = "chemwatch/v1"
TOPIC = f"{PREFIX}/haibin-terminal/TK101/TK101-PT-01"
OPTS = IngestOptions()
NOW_NS = time.time_ns()
NOW_MS = NOW_NS // 1_000_000


def parse(topic: str, payload: bytes | str | dict) -> object:
    raw = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    raw = raw.encode() if isinstance(raw, str) else raw
    return parse_message(topic, raw, NOW_NS, REGISTRY, PREFIX, OPTS)


def test_single_reading_is_accepted() -> None:
    out = parse(TOPIC, {"ts": NOW_MS, "value": 7.25, "quality": "uncertain"})
    assert out.rejections == []
    assert out.sensor[0].sensor.id == "TK101-PT-01"
    assert out.sensor[0].unit.id == "TK101"
    assert out.ts_ns == [NOW_MS * 1_000_000]
    assert out.value == [7.25]
    assert out.quality == [1]


@pytest.mark.parametrize(
    ("ts", "expected_ns"),
    [
        ("2026-11-29T03:00:00.123456Z", 1_795_921_200_123_456_000),
        ("2026-11-29T11:00:00+08:00", 1_795_921_200_000_000_000),
        (1_795_921_200, 1_795_921_200_000_000_000),  # epoch seconds
        (1_795_921_200_500, 1_795_921_200_500_000_000),  # epoch milliseconds
        (1_795_921_200.25, 1_795_921_200_250_000_000),
    ],
)
def test_timestamp_forms(ts: object, expected_ns: int) -> None:
    out = parse_message(
        TOPIC, json.dumps({"ts": ts, "value": 1}).encode(), expected_ns, REGISTRY, PREFIX, OPTS
    )
    assert out.rejections == []
    assert out.ts_ns == [expected_ns]


def test_batch_keeps_good_readings_and_rejects_bad_ones_individually() -> None:
    topic = f"{PREFIX}/haibin-terminal/TK101"
    out = parse(
        topic,
        {
            "readings": [
                {"sensor": "TK101-PT-01", "ts": NOW_MS, "value": 7.0},
                {"sensor": "TK101-PT-01", "ts": NOW_MS, "value": "high"},
                {"sensor": "TK101-TT-01", "ts": NOW_MS, "value": 21.5},
                {"sensor": "TK201-PT-01", "ts": NOW_MS, "value": 7.0},
            ]
        },
    )
    assert [r.sensor.id for r in out.sensor] == ["TK101-PT-01", "TK101-TT-01"]
    assert [(r.reason, r.index) for r in out.rejections] == [
        ("wrong_type", 1),
        ("topic_mismatch", 3),
    ]


GOOD = {"ts": NOW_MS, "value": 7.0}


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (TOPIC, b"not json", "not_json"),
        (TOPIC, b"\xff\xfe", "not_json"),
        (TOPIC, b"[1, 2]", "wrong_type"),
        (TOPIC, b'"7"', "wrong_type"),
        (TOPIC, {"ts": NOW_MS}, "missing_field"),
        (TOPIC, {"value": 7.0}, "missing_field"),
        (TOPIC, {"ts": NOW_MS, "value": "7"}, "wrong_type"),
        (TOPIC, {"ts": NOW_MS, "value": True}, "wrong_type"),
        (TOPIC, {"ts": NOW_MS, "value": None}, "wrong_type"),
        (TOPIC, b'{"ts": 1, "value": NaN}', "not_finite"),
        (TOPIC, b'{"ts": 1, "value": Infinity}', "not_finite"),
        (TOPIC, {"ts": NOW_MS, "value": 1e308 * 10}, "not_finite"),
        (TOPIC, {"ts": NOW_MS, "value": 26.0}, "out_of_range"),
        (TOPIC, {"ts": NOW_MS, "value": -0.5}, "out_of_range"),
        (TOPIC, {"ts": NOW_MS + 3_600_000, "value": 7.0}, "ts_future"),
        (TOPIC, {"ts": NOW_MS - 2 * 86_400_000, "value": 7.0}, "ts_too_old"),
        (TOPIC, {"ts": "yesterday", "value": 7.0}, "bad_timestamp"),
        (TOPIC, {"ts": "2026-11-29T03:00:00", "value": 7.0}, "bad_timestamp"),
        (TOPIC, {"ts": -5, "value": 7.0}, "bad_timestamp"),
        (TOPIC, {"ts": [1], "value": 7.0}, "bad_timestamp"),
        (TOPIC, {"ts": NOW_MS, "value": 7.0, "quality": "great"}, "bad_quality"),
        (f"{PREFIX}/haibin-terminal/TK101/NOPE-1", GOOD, "unknown_sensor"),
        (f"{PREFIX}/other-site/TK101/TK101-PT-01", GOOD, "topic_mismatch"),
        (f"{PREFIX}/haibin-terminal/TK102/TK101-PT-01", GOOD, "topic_mismatch"),
        (f"{PREFIX}/a/b/c/d", GOOD, "bad_topic"),
        (f"{PREFIX}/haibin-terminal", GOOD, "bad_topic"),
        ("elsewhere/haibin-terminal/TK101/TK101-PT-01", GOOD, "bad_topic"),
        (f"{PREFIX}/haibin-terminal/TK101", {"readings": []}, "missing_field"),
        (f"{PREFIX}/haibin-terminal/TK101", {"readings": "x"}, "missing_field"),
        (f"{PREFIX}/haibin-terminal/TK101", {"readings": [5]}, "wrong_type"),
        (f"{PREFIX}/haibin-terminal/TK101", {"readings": [{"value": 1}]}, "missing_field"),
        (TOPIC, b"{" + b" " * 2_000_000 + b"}", "oversized"),
    ],
)
def test_rejections_carry_their_reason(topic: str, payload: object, reason: str) -> None:
    out = parse(topic, payload)
    assert out.value == []
    assert [r.reason for r in out.rejections] == [reason]
    assert out.rejections[0].message
