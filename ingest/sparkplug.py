"""Sparkplug B 3.0 host side: births, alias tables, data, deaths, sequence numbers.

Edge nodes publish on ``spBv1.0/{group}/{NBIRTH|NDATA|NDEATH|DBIRTH|DDATA|DDEATH}/
{edge}[/{device}]``. The registry maps a (group, edge node, device) onto a unit
(``units[].sparkplug``) and a metric name onto a sensor (``sparkplug_metric``, default
the sensor id). What this module does with each message (docs/ingest.md):

* NBIRTH: starts a session: remembers bdSeq, resets the node's alias table and seq,
  learns alias -> metric name, and ingests the birth values.
* DBIRTH: adds the device's aliases, ingests its values.
* NDATA/DDATA: resolves aliases, ingests values (an alias nobody declared is a dead
  letter ``unknown_alias`` and triggers a rebirth request).
* seq: every message but NDEATH carries seq 0..255; a jump is a gap: counted, logged,
  and answered with NCMD ``Node Control/Rebirth`` (as are data from a node we have no
  birth for, e.g. after the bridge restarted).
* NDEATH/DDEATH: the node's/device's sensors are *stale*: for each one a reading with
  value NaN and quality bad is emitted at the time the death arrived, so detectors and
  alerting see that data stopped instead of silence. An NDEATH whose bdSeq is not the
  current session's (a late will of an older connection) is ignored.

Alias tables and seq need every message of a node in order, so Sparkplug is consumed
on a plain (not shared) subscription by one bridge (``ingest.sparkplug: true``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from common import sparkplug_b_pb2 as pb
from common.readings import Quality
from common.registry import Registry
from ingest import metrics
from ingest.batching import Batcher
from ingest.rejection import Reject, Rejection
from ingest.sensors import SensorInfo, SensorTable
from ingest.settings import IngestOptions
from ingest.units import UnitError

log = logging.getLogger(__name__)

SPARKPLUG_NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
_BOOLEAN = 11
_SIGNED_BITS = {1: 8, 2: 16, 3: 32}  # Int8/16/32 ride in uint32 int_value
_INT64 = 4
_NUMERIC = {"int_value", "long_value", "float_value", "double_value", "boolean_value"}
_REBIRTH_EVERY_S = 5.0
_BAD = int(Quality.BAD)

Source = tuple[str, str, str | None]  # group, edge node, device (None: node level)


@dataclass(slots=True)
class _Node:
    bdseq: int | None
    seq: int
    online: bool = True
    aliases: dict[int, tuple[str | None, str]] = field(default_factory=dict)


class SparkplugHost:
    """Turns Sparkplug messages into readings (into a Batcher) and rejections."""

    def __init__(
        self,
        registry: Registry,
        sensors: SensorTable,
        publish: Callable[[str, bytes], None],
        options: IngestOptions,
    ) -> None:
        self._publish = publish
        self._options = options
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._last_rebirth: dict[tuple[str, str], float] = {}
        self._map: dict[Source, dict[str, SensorInfo]] = {}
        for site in registry.plant.sites:
            for unit in site.units:
                if unit.sparkplug is None:
                    continue
                sp = unit.sparkplug
                by_metric = self._map.setdefault((sp.group, sp.edge_node, sp.device), {})
                for sensor in unit.sensors:
                    info = sensors.get(sensor.id)
                    if info is not None:
                        by_metric[sensor.sparkplug_metric or sensor.id] = info

    def groups(self) -> list[str]:
        """Sparkplug groups the registry maps (the bridge subscribes to these)."""
        return sorted({g for g, _e, _d in self._map})

    def handle(self, topic: str, payload: bytes, received_ns: int, out: Batcher) -> list[Rejection]:
        """Process one Sparkplug message; readings go to ``out``, rejections are returned."""
        rejections: list[Rejection] = []
        try:
            parts = topic.split("/")
            if len(parts) < 3 or parts[1] == "STATE" or parts[2] in ("NCMD", "DCMD"):
                return rejections  # host state and commands are not data
            if len(parts) not in (4, 5) or parts[0] != SPARKPLUG_NAMESPACE or not all(parts):
                raise Reject("bad_topic", f"topic {topic!r} is not a Sparkplug B topic")
            group, kind, edge = parts[1], parts[2], parts[3]
            device = parts[4] if len(parts) == 5 else None
            if (device is None) != kind.startswith("N") or kind[1:] not in (
                "BIRTH",
                "DATA",
                "DEATH",
            ):
                raise Reject("bad_topic", f"{kind} does not fit topic {topic!r}")
            if len(payload) > self._options.max_payload_bytes:
                raise Reject(
                    "oversized",
                    f"payload of {len(payload)} bytes exceeds {self._options.max_payload_bytes}",
                )
            try:
                msg = pb.Payload.FromString(payload)
            except DecodeError as exc:
                raise Reject("not_protobuf", f"not a Sparkplug B payload: {exc}") from exc
            self._dispatch(group, kind, edge, device, msg, received_ns, out, rejections)
        except Reject as rej:
            rejections.append(Rejection(rej.reason, rej.message))
        return rejections

    # ------------------------------------------------------------------ messages

    def _dispatch(
        self,
        group: str,
        kind: str,
        edge: str,
        device: str | None,
        msg: pb.Payload,
        received_ns: int,
        out: Batcher,
        rejections: list[Rejection],
    ) -> None:
        key = (group, edge)
        if kind == "NBIRTH":
            born = self._nodes[key] = _Node(_bdseq(msg), msg.seq)
            self._learn_aliases(born, None, msg.metrics)
            log.info("Sparkplug NBIRTH %s/%s bdSeq=%s", group, edge, born.bdseq)
            self._values(group, edge, None, born, msg, received_ns, out, rejections)
            return
        if kind == "NDEATH":
            dead = self._nodes.get(key)
            bdseq = _bdseq(msg)
            if dead is None or (bdseq is not None and dead.bdseq not in (None, bdseq)):
                log.info("Sparkplug NDEATH %s/%s of an older session ignored", group, edge)
                return
            dead.online = False
            self._stale(group, edge, None, received_ns, out, whole_node=True)
            return
        node = self._nodes.get(key)
        if node is None or not node.online:
            self._rebirth(group, edge, "data from a node without a birth certificate")
        else:
            self._check_seq(group, edge, node, msg)
        if kind == "DBIRTH" and node is not None:
            self._learn_aliases(node, device, msg.metrics)
        if kind == "DDEATH":
            self._stale(group, edge, device, received_ns, out, whole_node=False)
            return
        self._values(group, edge, device, node, msg, received_ns, out, rejections)

    def _check_seq(self, group: str, edge: str, node: _Node, msg: pb.Payload) -> None:
        expected = (node.seq + 1) % 256
        if msg.HasField("seq") and msg.seq != expected:
            metrics.SEQUENCE_GAPS.inc()
            log.warning(
                "Sparkplug seq gap on %s/%s: expected %d, got %d", group, edge, expected, msg.seq
            )
            self._rebirth(group, edge, "sequence gap")
        if msg.HasField("seq"):
            node.seq = msg.seq

    def _learn_aliases(
        self, node: _Node, device: str | None, metric_list: Iterable[pb.Payload.Metric]
    ) -> None:
        for m in metric_list:
            if m.HasField("alias") and m.name:
                node.aliases[m.alias] = (device, m.name)

    def _rebirth(self, group: str, edge: str, why: str) -> None:
        """Ask the edge node to publish its births again (at most every 5 s per node)."""
        now = time.monotonic()
        if now - self._last_rebirth.get((group, edge), -math.inf) < _REBIRTH_EVERY_S:
            return
        self._last_rebirth[(group, edge)] = now
        cmd = pb.Payload(timestamp=time.time_ns() // 1_000_000)
        metric = cmd.metrics.add()
        metric.name = REBIRTH_METRIC
        metric.datatype = _BOOLEAN
        metric.boolean_value = True
        metric.timestamp = cmd.timestamp
        self._publish(f"{SPARKPLUG_NAMESPACE}/{group}/NCMD/{edge}", cmd.SerializeToString())
        metrics.REBIRTHS.inc()
        log.warning("Sparkplug rebirth requested from %s/%s (%s)", group, edge, why)

    def _stale(
        self,
        group: str,
        edge: str,
        device: str | None,
        received_ns: int,
        out: Batcher,
        *,
        whole_node: bool,
    ) -> None:
        """A NaN reading with quality bad for every sensor the node/device carried."""
        count = 0
        for (g, e, d), by_metric in self._map.items():
            if g == group and e == edge and (whole_node or d == device):
                for info in by_metric.values():
                    out.add(info.unit, info.id, received_ns, math.nan, _BAD, received_ns)
                    count += 1
        metrics.STALE.inc(count)
        where = f"{group}/{edge}" + (f"/{device}" if device else "")
        log.warning("Sparkplug %s died: %d sensors marked stale", where, count)

    def _values(
        self,
        group: str,
        edge: str,
        device: str | None,
        node: _Node | None,
        msg: pb.Payload,
        received_ns: int,
        out: Batcher,
        rejections: list[Rejection],
    ) -> None:
        by_metric = self._map.get((group, edge, device), {})
        msg_ts = msg.timestamp if msg.HasField("timestamp") else None
        for i, m in enumerate(msg.metrics):
            try:
                name = m.name or None
                if name is None and m.HasField("alias"):
                    entry = node.aliases.get(m.alias) if node is not None else None
                    if entry is None or entry[0] != device:
                        self._rebirth(group, edge, f"unknown alias {m.alias}")
                        raise Reject("unknown_alias", f"alias {m.alias} was never declared")
                    name = entry[1]
                info = by_metric.get(name or "")
                if info is None:
                    continue  # bdSeq, Node Control/*, metrics the plant does not monitor
                self._value(info, m, msg_ts, received_ns, out)
            except Reject as rej:
                rejections.append(Rejection(rej.reason, rej.message, i))

    def _value(
        self,
        info: SensorInfo,
        m: pb.Payload.Metric,
        msg_ts: int | None,
        received_ns: int,
        out: Batcher,
    ) -> None:
        ts_ms = m.timestamp if m.HasField("timestamp") else msg_ts
        ts_ns = received_ns if ts_ms is None else ts_ms * 1_000_000
        opts = self._options
        if ts_ns > received_ns + opts.max_future_skew_s * 1e9:
            raise Reject("ts_future", f"timestamp is more than {opts.max_future_skew_s:g} s ahead")
        if ts_ns < received_ns - opts.max_age_s * 1e9:
            raise Reject("ts_too_old", f"timestamp is more than {opts.max_age_s:g} s old")
        quality, eng_unit = _properties(m)
        if m.is_null:
            out.add(info.unit, info.id, ts_ns, math.nan, _BAD, received_ns)
            return
        value = _number(m)
        if not math.isfinite(value):
            raise Reject("not_finite", f"{info.id}: value is not a finite number")
        if eng_unit is not None:
            try:
                value = info.convert(value, eng_unit)
            except UnitError as exc:
                raise Reject(exc.reason, f"{info.id}: {exc.message}") from exc
        if not info.lo <= value <= info.hi:
            raise Reject(
                "out_of_range",
                f"{value:g} {info.eng_unit} is outside the physical range "
                f"[{info.lo:g}, {info.hi:g}] of {info.id}",
            )
        out.add(info.unit, info.id, ts_ns, value, quality, received_ns)


def _bdseq(msg: pb.Payload) -> int | None:
    for m in msg.metrics:
        if m.name == "bdSeq":
            return int(m.long_value if m.HasField("long_value") else m.int_value)
    return None


def _number(m: pb.Payload.Metric) -> float:
    """The metric's value as a float (signed integer types decoded from two's complement)."""
    which = m.WhichOneof("value")
    if which not in _NUMERIC:
        raise Reject("wrong_type", f"metric {m.name or m.alias} carries {which}, not a number")
    raw = getattr(m, which)
    if which == "int_value" and m.datatype in _SIGNED_BITS:
        bits = 32 if raw >= 1 << _SIGNED_BITS[m.datatype] else _SIGNED_BITS[m.datatype]
        if raw >= 1 << (bits - 1):
            raw -= 1 << bits
    elif which == "long_value" and m.datatype == _INT64 and raw >= 1 << 63:
        raw -= 1 << 64
    return float(raw)


def _properties(m: pb.Payload.Metric) -> tuple[int, str | None]:
    """Quality (OPC: 192 good, 64..191 uncertain, below bad) and engineering unit."""
    quality = int(Quality.GOOD)
    unit = None
    if m.HasField("properties"):
        for key, prop in zip(m.properties.keys, m.properties.values, strict=False):
            if key.lower() == "quality" and prop.WhichOneof("value") == "int_value":
                code = prop.int_value
                quality = int(
                    Quality.GOOD
                    if code >= 192
                    else Quality.UNCERTAIN
                    if code >= 64
                    else Quality.BAD
                )
            elif key in ("engUnit", "EngUnit", "unit") and prop.WhichOneof("value") == (
                "string_value"
            ):
                unit = prop.string_value
    return quality, unit
