"""Sparkplug B 3.0 edge nodes for the simulator (``--format sparkplug``).

Every (group, edge node) the registry maps (``units[].sparkplug``) becomes one edge
node with an MQTT client of its own:

* on connect it registers NDEATH (with ``bdSeq``) as its MQTT will; ``bdSeq`` counts
  the node's connections (0..255);
* it then publishes NBIRTH (``bdSeq``, ``Node Control/Rebirth`` = false, and the
  node-level metrics with name, alias and datatype) and one DBIRTH per device. A
  birth carries the last reading of every metric, so the first birth waits until every
  sensor of the node has reported once (its earlier readings follow as data);
* NDATA/DDATA carry metrics by alias only, with ``seq`` 0..255 wrapping (NBIRTH is 0);
* an NCMD ``Node Control/Rebirth`` = true makes it publish its births again;
* a ``gateway_offline`` fault on any unit of the node drops the node's connection
  (DISCONNECT "with will"): the broker publishes the NDEATH. Readings of the node's
  units are not sent while it is offline (``buffer: true`` events forward the faulty
  unit's backlog after the rebirth).

Malformed-payload faults publish bytes that are not protobuf on the data topic; they
take no sequence number (a host cannot decode them anyway).

The encoder uses only the schema in ``common/`` (never the ingest package).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from common import mqtt as mqtt_clients
from common import sparkplug_b_pb2 as pb
from common.registry import Registry
from simulators.settings import SimulatorSettings

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
REBIRTH = "Node Control/Rebirth"
INT64, DOUBLE, BOOLEAN = 4, 10, 11
MALFORMED = b"\x0a\xff\xff not protobuf"


@dataclass(frozen=True, slots=True)
class Metric:
    """One sensor as a Sparkplug metric of a node (device None) or of a device."""

    index: int  # dense sensor index of the registry
    device: str | None
    name: str
    alias: int


def _metric(p: pb.Payload, m: Metric, value: float, ts_ms: int, *, birth: bool) -> None:
    out = p.metrics.add()
    if birth:
        out.name = m.name
    out.alias = m.alias
    out.timestamp = ts_ms
    out.datatype = DOUBLE
    out.double_value = value


def birth_payload(
    seq: int, ts_ms: int, metrics: Iterable[tuple[Metric, float, int]], bdseq: int | None = None
) -> bytes:
    """NBIRTH (with ``bdseq``: bdSeq and Node Control/Rebirth first) or DBIRTH."""
    p = pb.Payload(timestamp=ts_ms, seq=seq)
    if bdseq is not None:
        bd = p.metrics.add()
        bd.name, bd.datatype, bd.long_value, bd.timestamp = "bdSeq", INT64, bdseq, ts_ms
        rb = p.metrics.add()
        rb.name, rb.datatype, rb.boolean_value, rb.timestamp = REBIRTH, BOOLEAN, False, ts_ms
    for m, value, m_ts in metrics:
        _metric(p, m, value, m_ts, birth=True)
    return bytes(p.SerializeToString())


def data_payload(seq: int, ts_ms: int, metrics: Iterable[tuple[Metric, float, int]]) -> bytes:
    """NDATA/DDATA: metrics by alias only."""
    p = pb.Payload(timestamp=ts_ms, seq=seq)
    for m, value, m_ts in metrics:
        _metric(p, m, value, m_ts, birth=False)
    return bytes(p.SerializeToString())


def death_payload(bdseq: int, ts_ms: int) -> bytes:
    """NDEATH (the MQTT will): bdSeq only, no seq."""
    p = pb.Payload(timestamp=ts_ms)
    bd = p.metrics.add()
    bd.name, bd.datatype, bd.long_value = "bdSeq", INT64, bdseq
    return bytes(p.SerializeToString())


def is_rebirth_command(payload: bytes | bytearray) -> bool:
    """True for an NCMD payload carrying ``Node Control/Rebirth`` = true."""
    try:
        msg = pb.Payload.FromString(payload)
    except Exception:
        return False
    return any(m.name == REBIRTH and m.boolean_value for m in msg.metrics)


@dataclass(slots=True)
class EdgeNode:
    """One simulated Sparkplug edge node: its metrics, session state and MQTT client."""

    settings: SimulatorSettings
    group: str
    edge: str
    units: set[str] = field(default_factory=set)
    metrics: dict[int, Metric] = field(default_factory=dict)  # by dense sensor index
    bdseq: int = -1
    seq: int = 0
    client: mqtt.Client | None = None
    born: bool = False
    last: dict[int, tuple[float, int]] = field(default_factory=dict)  # value, ts ms
    backlog: list[tuple[int, float, int]] = field(default_factory=list)  # before the birth
    births: int = 0
    _rebirth: threading.Event = field(default_factory=threading.Event)

    def topic(self, kind: str, device: str | None = None) -> str:
        return f"{NAMESPACE}/{self.group}/{kind}/{self.edge}" + (f"/{device}" if device else "")

    @property
    def client_id(self) -> str:
        return f"{self.settings.simulator.client_id}-sp-{self.group}-{self.edge}"

    def online(self, now_ms: int) -> None:
        """Connect with NDEATH as the will (a new bdSeq per connection); births follow."""
        self.bdseq = (self.bdseq + 1) % 256
        c = mqtt_clients.make_client(self.settings.mqtt, self.client_id, persistent=False)
        c.will_set(self.topic("NDEATH"), death_payload(self.bdseq, now_ms), qos=1)
        ncmd = self.topic("NCMD")

        def on_connect(cl: mqtt.Client, *_a: Any) -> None:
            cl.subscribe(ncmd, qos=1)

        def on_message(_cl: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            if msg.topic == ncmd and is_rebirth_command(msg.payload):
                log.info("Sparkplug %s/%s: rebirth requested", self.group, self.edge)
                self._rebirth.set()

        c.on_connect = on_connect
        c.on_message = on_message
        mqtt_clients.connect(c, self.settings.mqtt, persistent=False)
        c.loop_start()
        self.client = c
        self.born = False

    def offline(self) -> None:
        """Drop off like a failing gateway: the broker publishes the NDEATH will."""
        if self.client is not None:
            self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
            self.client.loop_stop()
            self.client = None
        self.born = False

    def close(self) -> None:
        """End of the run: a clean disconnect (no will, as an orderly shutdown)."""
        if self.client is not None:
            self.client.disable_logger()
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None

    def publish(
        self, readings: list[tuple[int, float, int]], malformed: list[int], now_ms: int
    ) -> tuple[list[Any], list[tuple[int, float, int]]]:
        """Publish one step's readings (sensor index, value, ts ms) of this node.

        Returns the MQTT infos and the readings that went out as values (births
        included, repeats of earlier readings in a rebirth excluded) for the ledger.
        """
        c = self.client
        if c is None:
            return [], []
        for i, v, ts in readings:
            self.last[i] = (v, ts)
        sent: list[tuple[int, float, int]] = []
        infos: list[Any] = []
        qos = self.settings.mqtt.qos
        if self._rebirth.is_set():
            self._rebirth.clear()
            self.born = False
        if not self.born:
            if len(self.last) < len(self.metrics):  # wait until each sensor has a value
                self.backlog += readings
                return [], []
            infos += self._births(c, now_ms, qos)
            carried = {(i, ts) for i, (_v, ts) in self.last.items()}
            fresh = [r for r in self.backlog + readings if (r[0], r[2]) in carried]
            readings = [r for r in self.backlog + readings if (r[0], r[2]) not in carried]
            sent += fresh
            self.backlog = []
        by_device: dict[str | None, list[tuple[Metric, float, int]]] = {}
        for i, v, ts in readings:
            m = self.metrics[i]
            by_device.setdefault(m.device, []).append((m, v, ts))
        for device, ms in by_device.items():
            self.seq = (self.seq + 1) % 256
            kind = "DDATA" if device else "NDATA"
            body = data_payload(self.seq, now_ms, ms)
            infos.append(c.publish(self.topic(kind, device), body, qos))
        sent += readings
        for i in malformed:
            device = self.metrics[i].device
            topic = self.topic("DDATA" if device else "NDATA", device)
            infos.append(c.publish(topic, MALFORMED, qos))
        return infos, sent

    def _births(self, c: mqtt.Client, now_ms: int, qos: int) -> list[Any]:
        by_device: dict[str | None, list[tuple[Metric, float, int]]] = {None: []}
        for i, m in self.metrics.items():
            v, ts = self.last[i]
            by_device.setdefault(m.device, []).append((m, v, ts))
        self.seq = 0
        infos = [
            c.publish(
                self.topic("NBIRTH"), birth_payload(0, now_ms, by_device[None], self.bdseq), qos
            )
        ]
        for device in sorted(d for d in by_device if d is not None):
            self.seq = (self.seq + 1) % 256
            body = birth_payload(self.seq, now_ms, by_device[device])
            infos.append(c.publish(self.topic("DBIRTH", device), body, qos))
        self.born = True
        self.births += 1
        log.info("Sparkplug %s/%s born (bdSeq %d)", self.group, self.edge, self.bdseq)
        return infos


def edge_nodes(settings: SimulatorSettings, registry: Registry) -> dict[str, EdgeNode]:
    """The edge nodes the registry maps, by unit id (units without a mapping: absent)."""
    nodes: dict[tuple[str, str], EdgeNode] = {}
    by_unit: dict[str, EdgeNode] = {}
    for ref in registry:
        sp = ref.unit.sparkplug
        if sp is None:
            continue
        node = nodes.setdefault(
            (sp.group, sp.edge_node), EdgeNode(settings, sp.group, sp.edge_node)
        )
        node.units.add(ref.unit.id)
        alias = len(node.metrics) + 1
        name = ref.sensor.sparkplug_metric or ref.sensor.id
        node.metrics[ref.index] = Metric(ref.index, sp.device, name, alias)
        by_unit[ref.unit.id] = node
    return by_unit
