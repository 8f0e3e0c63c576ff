"""Sparkplug B host logic without a broker: aliases, seq gaps, rebirth, deaths, bdSeq."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from common import sparkplug_b_pb2 as pb
from common.registry import load_registry
from ingest.batching import Batcher
from ingest.sensors import SensorTable
from ingest.settings import IngestOptions
from ingest.sparkplug import SparkplugHost
from tests.ingest.sparkplug_node import EdgeNode

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = load_registry(ROOT / "examples" / "plant.yaml")
TK101 = ["TK101-PT-01", "TK101-PT-02", "TK101-TT-01"]


class Harness:
    def __init__(self) -> None:
        self.commands: list[tuple[str, pb.Payload]] = []
        self.host = SparkplugHost(
            REGISTRY,
            SensorTable(REGISTRY),
            lambda t, p: self.commands.append((t, pb.Payload.FromString(p))),
            IngestOptions(),
        )
        self.node = EdgeNode("haibin", "lpg-farm-rtu")

    def send(self, kind: str, payload: bytes, device: str | None = None) -> tuple[Batcher, list]:
        out = Batcher()
        rej = self.host.handle(self.node.topic(kind, device), payload, time.time_ns(), out)
        return out, rej

    def birth(self) -> None:
        out, rej = self.send("NBIRTH", self.node.nbirth({"TK102/Pressure": 6.5}))
        assert rej == []
        assert out.units["TK102"].value == [6.5]
        out, rej = self.send("DBIRTH", self.node.dbirth(dict.fromkeys(TK101, 7.0)), "TK101")
        assert rej == []
        assert [b.sensors().tolist() for b in out.batches()] == [TK101]


def readings(out: Batcher) -> dict[str, float]:
    return {
        s: v
        for b in out.batches()
        for s, v in zip(b.sensors().tolist(), b.value.tolist(), strict=True)
    }


def test_births_then_data_by_alias() -> None:
    h = Harness()
    h.birth()
    out, rej = h.send("DDATA", h.node.data({"TK101-PT-01": 7.5, "TK101-TT-01": 21.0}), "TK101")
    assert rej == []
    assert readings(out) == {"TK101-PT-01": 7.5, "TK101-TT-01": 21.0}
    out, rej = h.send("NDATA", h.node.data({"TK102/Pressure": 6.75}))
    assert (readings(out), rej) == ({"TK102-PT-01": 6.75}, [])
    assert h.commands == []


def test_sequence_gap_is_counted_and_asks_for_rebirth() -> None:
    h = Harness()
    h.birth()
    h.node.seq += 3  # three messages lost
    out, _ = h.send("NDATA", h.node.data({"TK102/Pressure": 6.0}))
    assert readings(out) == {"TK102-PT-01": 6.0}  # the data itself is still good
    assert len(h.commands) == 1
    topic, cmd = h.commands[0]
    assert topic == "spBv1.0/haibin/NCMD/lpg-farm-rtu"
    assert (cmd.metrics[0].name, cmd.metrics[0].boolean_value) == ("Node Control/Rebirth", True)


def test_unknown_alias_is_a_dead_letter_and_asks_for_rebirth() -> None:
    h = Harness()
    h.birth()
    out, rej = h.send("DDATA", h.node.raw_alias(999, 1.0), "TK101")
    assert [(r.reason, r.index) for r in rej] == [("unknown_alias", 0)]
    assert out.count == 0
    assert len(h.commands) == 1


def test_data_before_any_birth_asks_for_rebirth() -> None:
    h = Harness()
    h.node.aliases["TK102/Pressure"] = 100
    _, rej = h.send("NDATA", h.node.data({"TK102/Pressure": 6.0}))
    assert [r.reason for r in rej] == ["unknown_alias"]
    assert [t for t, _ in h.commands] == ["spBv1.0/haibin/NCMD/lpg-farm-rtu"]


def test_deaths_mark_sensors_stale_and_old_ndeath_is_ignored() -> None:
    h = Harness()
    h.node.bdseq = 4
    h.birth()
    out, _ = h.send("DDEATH", h.node.ddeath(), "TK101")
    stale = readings(out)
    tk101 = [s for s in REGISTRY.sensors if s.unit.id == "TK101"]
    assert set(stale) == {s.sensor.id for s in tk101}
    assert all(math.isnan(v) for v in stale.values())
    assert set(out.units["TK101"].quality) == {2}
    out, _ = h.send("NDEATH", h.node.ndeath(bdseq=3))  # will of an older session
    assert out.count == 0
    out, _ = h.send("NDEATH", h.node.ndeath())
    assert set(out.units) == {"TK101", "TK102"}  # the node and all its devices
    assert all(math.isnan(v) for v in readings(out).values())


@pytest.mark.parametrize(
    ("datatype", "raw", "expected"),
    [(1, 0xFF, -1.0), (2, 0xFFFE, -2.0), (3, 0xFFFFFFFD, -3.0), (2, 0xFFFFFFFE, -2.0), (7, 5, 5.0)],
)
def test_signed_integers(datatype: int, raw: int, expected: float) -> None:
    h = Harness()
    h.birth()
    p = pb.Payload(seq=(h.node.seq + 1) % 256, timestamp=int(time.time() * 1000))
    h.node.seq += 1
    m = p.metrics.add()
    m.alias, m.datatype, m.int_value = h.node.aliases["TK101-TT-01"], datatype, raw
    out, rej = h.send("DDATA", p.SerializeToString(), "TK101")
    assert rej == []
    assert readings(out) == {"TK101-TT-01": expected}


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("spBv1.0/haibin/NDATA/lpg-farm-rtu", b"\xff\xff\xff", "not_protobuf"),
        ("spBv1.0/haibin/NDATA/lpg-farm-rtu/TK101", b"", "bad_topic"),
        ("spBv1.0/haibin/XDATA/lpg-farm-rtu", b"", "bad_topic"),
        ("spBv1.0/haibin/DDATA/lpg-farm-rtu", b"", "bad_topic"),
    ],
)
def test_bad_sparkplug_messages(topic: str, payload: bytes, reason: str) -> None:
    h = Harness()
    rej = h.host.handle(topic, payload, time.time_ns(), Batcher())
    assert [r.reason for r in rej] == [reason]


HOUR_MS = 3_600_000


def _metric_case(h: Harness, **fields: object) -> bytes:
    """A DDATA for TK101 whose one metric (TK101-TT-01) has ``fields`` set; ``unit``
    adds an engineering-unit property."""
    p = pb.Payload(seq=(h.node.seq + 1) % 256, timestamp=int(time.time() * 1000))
    h.node.seq += 1
    m = p.metrics.add()
    m.alias, m.datatype, m.double_value = h.node.aliases["TK101-TT-01"], 10, 20.0
    unit = fields.pop("unit", None)
    for name, value in fields.items():
        setattr(m, name, value)
    if unit is not None:
        m.properties.keys.append("engUnit")
        m.properties.values.add().string_value = str(unit)
    return p.SerializeToString()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"double_value": math.nan}, "not_finite"),
        ({"double_value": math.inf}, "not_finite"),
        ({"timestamp": int(time.time() * 1000) + 2 * HOUR_MS}, "ts_future"),
        ({"timestamp": int(time.time() * 1000) - 48 * HOUR_MS}, "ts_too_old"),
        ({"unit": "furlongs"}, "unknown_unit"),
        ({"unit": "bar"}, "incompatible_unit"),
        ({"double_value": 1e6}, "out_of_range"),
    ],
    ids=["nan", "inf", "future", "too-old", "unknown-unit", "incompatible-unit", "range"],
)
def test_bad_metrics_are_rejected_with_their_reason(fields: dict, reason: str) -> None:
    """The Sparkplug half of the bad-input corpus: each bad metric is one dead letter with
    its reason and index, and stores nothing."""
    h = Harness()
    h.birth()
    out, rej = h.send("DDATA", _metric_case(h, **fields), "TK101")
    assert [(r.reason, r.index) for r in rej] == [(reason, 0)]
    assert "TK101-TT-01" in rej[0].message or reason in ("ts_future", "ts_too_old")
    assert out.count == 0


def test_oversized_payload_is_rejected_before_decoding() -> None:
    h = Harness()
    big = b"\x00" * (IngestOptions().max_payload_bytes + 1)
    rej = h.host.handle(h.node.topic("NDATA"), big, time.time_ns(), Batcher())
    assert [r.reason for r in rej] == ["oversized"]
    assert str(len(big)) in rej[0].message


def test_out_of_range_and_string_metrics_are_rejected_individually() -> None:
    h = Harness()
    h.birth()
    p = pb.Payload(seq=(h.node.seq + 1) % 256)
    h.node.seq += 1
    a = p.metrics.add()
    a.alias, a.datatype, a.double_value = h.node.aliases["TK101-PT-01"], 10, 99.0
    b = p.metrics.add()
    b.alias, b.datatype, b.string_value = h.node.aliases["TK101-PT-02"], 12, "high"
    c = p.metrics.add()
    c.alias, c.datatype, c.double_value = h.node.aliases["TK101-TT-01"], 10, 20.0
    out, rej = h.send("DDATA", p.SerializeToString(), "TK101")
    assert [(r.reason, r.index) for r in rej] == [("out_of_range", 0), ("wrong_type", 1)]
    assert readings(out) == {"TK101-TT-01": 20.0}
