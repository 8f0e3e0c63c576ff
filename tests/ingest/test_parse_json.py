"""Payload validation: every rejection has a stable reason; good readings pass intact."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from common.registry import load_registry
from ingest.batching import Batcher
from ingest.parse_json import JsonContext, parse_json
from ingest.rejection import Rejection
from ingest.sensors import SensorTable
from ingest.settings import IngestOptions

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = load_registry(ROOT / "examples" / "plant.yaml")
PREFIX = "chemwatch/v1"
TOPIC = f"{PREFIX}/haibin-terminal/TK101/TK101-PT-01"
OPTS = IngestOptions()
NOW_NS = time.time_ns()
NOW_MS = NOW_NS // 1_000_000


class Out:
    """Accepted readings (flattened over units) and rejections of one parse."""

    def __init__(self, batcher: Batcher, rejections: list[Rejection]) -> None:
        self.rejections = rejections
        self.unit: list[str] = []
        self.sensor: list[str] = []
        self.ts_ns: list[int] = []
        self.value: list[float] = []
        self.quality: list[int] = []
        for b in batcher.batches(max_readings=1_000_000):
            self.unit += [b.unit_id] * len(b)
            self.sensor += b.sensors().tolist()
            self.ts_ns += b.ts_ns.tolist()
            self.value += b.value.tolist()
            self.quality += b.quality.tolist()


def parse(
    topic: str,
    payload: bytes | str | dict,
    received_ns: int = NOW_NS,
    options: IngestOptions = OPTS,
    sensors: SensorTable | None = None,
) -> Out:
    raw = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    raw = raw.encode() if isinstance(raw, str) else raw
    ctx = JsonContext(sensors or SensorTable(REGISTRY), PREFIX, options)
    batcher = Batcher()
    return Out(batcher, parse_json(topic, raw, received_ns, ctx, batcher))


def test_single_reading_is_accepted() -> None:
    out = parse(TOPIC, {"ts": NOW_MS, "value": 7.25, "quality": "uncertain"})
    assert out.rejections == []
    assert out.sensor == ["TK101-PT-01"]
    assert out.unit == ["TK101"]
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
    out = parse(TOPIC, {"ts": ts, "value": 1}, received_ns=expected_ns)
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
    assert out.sensor == ["TK101-PT-01", "TK101-TT-01"]
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


GAS = f"{PREFIX}/haibin-terminal/TK201/TK201-GD-01"  # ammonia, ppm, range 0-100
TEMP = f"{PREFIX}/haibin-terminal/TK101/TK101-TT-01"  # degC, range -40..80
LEL = f"{PREFIX}/haibin-terminal/TK101/TK101-GD-01"  # propane, %LEL


@pytest.mark.parametrize(
    ("topic", "value", "unit", "expected"),
    [
        (TOPIC, 7.0, "bar(g)", 7.0),
        (TOPIC, 700.0, "kPa(g)", 7.0),
        (TOPIC, 0.7, "MPa(g)", 7.0),
        (TOPIC, 101.52633, "psig", 7.0),
        (TEMP, 293.15, "K", 20.0),
        (TEMP, 68.0, "degF", 20.0),
        (TEMP, 20.0, "°C", 20.0),
        (GAS, 20.0, "mg/m3", 20.0 * 24.04 / 17.03),  # ammonia 17.03 g/mol
        (GAS, 0.002, "%vol", 20.0),
        (GAS, 20_000.0, "ppb", 20.0),
        (LEL, 12.0, "%LEL", 12.0),
    ],
)
def test_payload_units_are_converted_to_the_registry_unit(
    topic: str, value: float, unit: str, expected: float
) -> None:
    out = parse(topic, {"ts": NOW_MS, "value": value, "unit": unit})
    assert out.rejections == []
    assert out.value == [pytest.approx(expected, rel=1e-6)]


@pytest.mark.parametrize(
    ("topic", "unit", "reason"),
    [
        (TOPIC, "bar", "incompatible_unit"),  # absolute vs gauge: no atmosphere assumed
        (TOPIC, "kPa", "incompatible_unit"),
        (TOPIC, "degC", "incompatible_unit"),
        (TEMP, "ppm", "incompatible_unit"),
        (LEL, "ppm", "incompatible_unit"),  # %LEL is never derived
        (GAS, "%LEL", "incompatible_unit"),
        (TOPIC, "furlongs", "unknown_unit"),
        (TOPIC, "", "unknown_unit"),
    ],
)
def test_incompatible_or_unknown_units_are_rejected(topic: str, unit: str, reason: str) -> None:
    out = parse(topic, {"ts": NOW_MS, "value": 1.0, "unit": unit})
    assert [r.reason for r in out.rejections] == [reason]
    assert out.value == []


def test_range_is_checked_after_conversion() -> None:
    # 30 bar(g) = 3000 kPa(g) is above the 25 bar(g) range end
    out = parse(TOPIC, {"ts": NOW_MS, "value": 3000, "unit": "kPa(g)"})
    assert [r.reason for r in out.rejections] == ["out_of_range"]


def test_auto_register_accepts_unknown_sensors_flagged_uncertain() -> None:
    sensors = SensorTable(REGISTRY, auto_register=True)
    topic = f"{PREFIX}/haibin-terminal/TK101/TK101-NEW-9"
    out = parse(topic, {"ts": NOW_MS, "value": 123.0}, sensors=sensors)
    assert out.rejections == []
    assert (out.unit, out.sensor, out.value, out.quality) == (
        ["TK101"],
        ["TK101-NEW-9"],
        [123.0],
        [1],
    )
    info = sensors.get("TK101-NEW-9")
    assert info is not None
    assert info.auto
    # once registered, it stays on its unit
    moved = parse(
        f"{PREFIX}/haibin-terminal/TK102/TK101-NEW-9",
        {"ts": NOW_MS, "value": 1.0},
        sensors=sensors,
    )
    assert [r.reason for r in moved.rejections] == ["topic_mismatch"]
    # strict mode (the default) still rejects
    assert [r.reason for r in parse(topic, {"ts": NOW_MS, "value": 1.0}).rejections] == [
        "unknown_sensor"
    ]


def test_batcher_records_round_trip_and_split() -> None:
    from common.readings import decode_batch

    batcher = Batcher()
    for i in range(25):
        batcher.add("TK101", f"S{i % 3}", 1000 + i, float(i), i % 3, 5000 + i)
    batcher.add("TK102", "X", 1, 2.0, 0, 3)
    records = batcher.records(max_readings=10)
    assert [(k, n) for k, _v, n, _u in records] == [
        (b"TK101", 10),
        (b"TK101", 10),
        (b"TK101", 5),
        (b"TK102", 1),
    ]
    decoded = [decode_batch(v) for _k, v, _n, _u in records[:3]]
    assert [s for b in decoded for s in b.sensors()] == [f"S{i % 3}" for i in range(25)]
    assert [v for b in decoded for v in b.value] == [float(i) for i in range(25)]
    assert [q for b in decoded for q in b.quality] == [i % 3 for i in range(25)]
    assert [t for b in decoded for t in b.ingest_ns] == [5000 + i for i in range(25)]


def _random_entry(rng: Any, i: int) -> Any:
    """Mostly valid gateway-batch entries, with every kind of fault now and then."""
    sensor = ["TK101-PT-01", "TK101-TT-01", "TK101-GD-01"][i % 3]
    entry: dict[str, Any] = {
        "sensor": sensor,
        "ts": NOW_MS - int(rng.integers(0, 5000)),
        "value": float(rng.uniform(0, 20)),
    }
    fault = int(rng.integers(0, 40))
    faults: dict[int, Any] = {
        0: lambda: entry.update(value="7"),
        1: lambda: entry.update(value=True),
        2: lambda: entry.update(value=1e9),
        3: lambda: entry.update(ts=NOW_MS + 3_600_000),
        4: lambda: entry.update(ts="2026-11-29T03:00:00Z"),
        5: lambda: entry.update(ts=(NOW_MS - 1000) / 1000),
        6: lambda: entry.update(quality="uncertain"),
        7: lambda: entry.update(quality=["x"]),
        8: lambda: entry.update(sensor="TK102-PT-01"),
        9: lambda: entry.update(sensor="NOPE"),
        10: lambda: entry.update(unit="kPa(g)"),
        11: lambda: entry.pop("value"),
        12: lambda: entry.update(value=int(rng.integers(0, 20))),
        13: lambda: entry.update(sensor=["TK101-PT-01"]),
        14: lambda: entry.update(value=2**70),
    }
    if fault in faults:
        faults[fault]()
    return entry if fault != 15 else 5


@pytest.mark.parametrize("seed", range(40))
def test_fast_batch_path_equals_entry_by_entry_path(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    import ingest.parse_json as pj

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    clean = seed % 2 == 0  # half the batches without faults: the fast path takes those
    entries = [
        {"sensor": "TK101-PT-01", "ts": NOW_MS - i, "value": float(i % 20)}
        if clean
        else _random_entry(rng, i)
        for i in range(n)
    ]
    topic = f"{PREFIX}/haibin-terminal/TK101"
    taken: list[bool] = []
    real = pj.fast_batch
    monkeypatch.setattr(pj, "fast_batch", lambda *a: taken.append(real(*a)) or taken[-1])
    fast = parse(topic, {"readings": entries})
    monkeypatch.setattr(pj, "fast_batch", lambda *a: False)
    slow = parse(topic, {"readings": entries})
    assert (fast.sensor, fast.ts_ns, fast.value, fast.quality) == (
        slow.sensor,
        slow.ts_ns,
        slow.value,
        slow.quality,
    )
    assert [(r.reason, r.index) for r in fast.rejections] == [
        (r.reason, r.index) for r in slow.rejections
    ]
    if clean:
        assert taken == [True]  # the array path really ran
        assert len(fast.value) == n
