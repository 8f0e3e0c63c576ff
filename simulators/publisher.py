"""Publish a :class:`~simulators.plant.Simulation` over MQTT, paced to simulated time.

JSON singles (``{prefix}/{site}/{unit}/{sensor}``) or gateway batches
(``{"readings": [...]}`` on ``{prefix}/{site}/{unit}``), QoS from the MQTT settings.
Units with a ``gateway_offline`` event publish through their own client whose MQTT
will (``{prefix}/{site}/{unit}/gateway/state``, ``{"online": false}``, retained) the
broker sends when the gateway drops off (DISCONNECT reason 0x04, "with will").
With ``format: sparkplug`` the units the registry maps to Sparkplug B go out through
their edge nodes (:mod:`simulators.sparkplug`), the others as JSON singles.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import Counter

from common import mqtt as mqtt_clients
from common.registry import Registry
from simulators.plant import Simulation, Step
from simulators.settings import SimulatorSettings
from simulators.sparkplug import EdgeNode, edge_nodes
from simulators.truth import iso

log = logging.getLogger(__name__)
MAX_UNACKED = 20_000
PUBLISHED = Counter("chemwatch_simulator_published_total", "Readings published")
_MALFORMED = (
    lambda ts, v: b"{not json",
    lambda ts, v: json.dumps({"ts": ts}).encode(),
    lambda ts, v: json.dumps({"ts": ts, "value": str(v)}).encode(),
    lambda ts, v: json.dumps({"ts": "yesterday", "value": v}).encode(),
    lambda ts, v: b"\xff\xfe\x00",
)


@dataclass(slots=True)
class Summary:
    readings: int = 0
    messages: int = 0
    malformed: int = 0
    failed: int = 0  # publishes paho refused (e.g. while disconnected)
    lost: int = 0  # QoS 1 messages never acknowledged (e.g. a gateway went offline)
    dropped: int = 0  # readings of a Sparkplug node that was offline for another unit
    sim_s: float = 0.0
    wall_s: float = 0.0
    behind_s: float = 0.0  # worst lag of the wall clock behind the simulated schedule
    events: list[str] = field(default_factory=list)

    def line(self) -> str:
        rate = self.readings / self.wall_s if self.wall_s else 0.0
        return (
            f"simulated {self.sim_s:,.0f} s in {self.wall_s:,.1f} s wall; {self.readings:,} "
            f"readings in {self.messages:,} messages ({rate:,.0f}/s), {self.malformed} malformed, "
            f"{self.failed} refused by the client, {self.lost} unacknowledged, "
            f"{self.dropped} dropped; "
            f"max fall-behind {self.behind_s:.2f} s"
        )


class Gateway:
    """An MQTT client of its own for one unit's gateway, with a last will."""

    def __init__(self, settings: SimulatorSettings, site: str, unit: str) -> None:
        self.settings = settings
        self.client_id = f"{settings.simulator.client_id}-gw-{unit}"
        self.state_topic = f"{settings.mqtt.topic_prefix}/{site}/{unit}/gateway/state"
        self.client: mqtt.Client | None = None

    def online(self) -> mqtt.Client:
        c = mqtt_clients.make_client(self.settings.mqtt, self.client_id, persistent=False)
        c.will_set(self.state_topic, json.dumps({"online": False}), qos=1, retain=True)
        c.on_connect = lambda cl, *_a: cl.publish(
            self.state_topic, json.dumps({"online": True}), qos=1, retain=True
        )
        mqtt_clients.connect(c, self.settings.mqtt, persistent=False)
        c.loop_start()
        self.client = c
        return c

    def offline(self) -> None:
        """Drop off the way a failing gateway does: the broker publishes the will."""
        if self.client is not None:
            self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
            self.client.loop_stop()
            self.client = None


class Publisher:
    """Steps the simulation and publishes each step's readings."""

    def __init__(self, settings: SimulatorSettings, registry: Registry, sim: Simulation) -> None:
        self.settings = settings
        self.registry = registry
        self.sim = sim
        prefix = settings.mqtt.topic_prefix
        self.topics = [f"{prefix}/{r.site.id}/{r.unit.id}/{r.sensor.id}" for r in registry]
        self.unit_topic = {u: f"{prefix}/{s.id}/{u}" for u, (s, _) in registry.units.items()}
        units = sorted(registry.units)
        self.unit_code = np.array([units.index(r.unit.id) for r in registry])
        self.units = units
        sparkplug = settings.simulator.format == "sparkplug"
        self.nodes: dict[str, EdgeNode] = edge_nodes(settings, registry) if sparkplug else {}
        self.gateways = {
            e.unit: Gateway(settings, registry.units[e.unit][0].id, e.unit)
            for e in sim.events
            if e.kind == "gateway_offline" and e.unit and e.unit not in self.nodes
        }
        self.connected = False
        self.summary = Summary()
        self._malformed_n = 0

    async def run(self, stop: asyncio.Event, duration_s: float | None) -> Summary:
        """Publish until ``stop`` or ``duration_s`` of simulated time."""
        opts = self.settings.simulator
        client = mqtt_clients.make_client(self.settings.mqtt, opts.client_id, persistent=False)
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def on_connect(*_args: Any) -> None:
            self.connected = True
            loop.call_soon_threadsafe(ready.set)

        client.on_connect = on_connect
        mqtt_clients.connect(client, self.settings.mqtt, persistent=False)
        client.loop_start()
        gw_clients = {u: g.online() for u, g in self.gateways.items()}
        nodes = list({id(n): n for n in self.nodes.values()}.values())
        for node in nodes:
            node.online(self._ns(0.0) // 1_000_000)
        ledger = opts.ledger.open("a", encoding="utf-8") if opts.ledger else None
        # unacknowledged messages per client (None = the main client): a gateway's are
        # dropped when it goes offline, as a real gateway's would be
        pending: dict[str | None, deque[Any]] = {None: deque()}
        offline: frozenset[str] = frozenset()
        s = self.summary
        try:
            await _first(ready, stop)
            start = time.monotonic()
            last_progress = start
            while not stop.is_set():
                if duration_s is not None and self.sim.t + 1e-9 >= duration_s:
                    break
                step = self.sim.step()
                for unit in (step.offline_units - offline) & self.gateways.keys():
                    self.gateways[unit].offline()
                    gw_clients.pop(unit, None)
                    s.lost += sum(not i.is_published() for i in pending.pop(unit, ()))
                    s.events.append(f"{iso(self._ns(step.t_s))} gateway {unit} offline")
                for unit in (offline - step.offline_units) & self.gateways.keys():
                    gw_clients[unit] = self.gateways[unit].online()
                    s.events.append(f"{iso(self._ns(step.t_s))} gateway {unit} online")
                self._node_transitions(step, offline, pending)
                offline = step.offline_units
                for key, info in self._publish(client, gw_clients, step, ledger):
                    if info.rc == mqtt.MQTT_ERR_SUCCESS:
                        pending.setdefault(key, deque()).append(info)
                    else:
                        s.failed += 1
                # back-pressure: paho's message ids wrap at 65535, and a backlog only
                # hides that we fall behind (which the summary then reports)
                while True:
                    for queue in pending.values():
                        while queue and queue[0].is_published():  # acks come in order
                            queue.popleft()
                    if max(map(len, pending.values())) < MAX_UNACKED or stop.is_set():
                        break
                    await asyncio.sleep(0.005)
                now = time.monotonic()
                ahead = start + step.t_s / opts.speed - now
                s.behind_s = max(s.behind_s, -ahead)
                s.sim_s, s.wall_s = step.t_s, now - start
                if opts.progress and now - last_progress >= 2:
                    last_progress = now
                    print(self._status(step.t_s), file=sys.stderr, flush=True)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            deadline = time.monotonic() + 30  # QoS 1: wait for the PUBACKs before done
            for info in (i for queue in pending.values() for i in queue):
                if not info.is_published() and time.monotonic() < deadline:
                    await asyncio.to_thread(info.wait_for_publish, deadline - time.monotonic())
                s.lost += not info.is_published()
            s.wall_s = time.monotonic() - start
        finally:
            for node in nodes:
                node.close()
            for g in self.gateways.values():
                if g.client is not None:
                    g.client.disable_logger()
                    g.client.disconnect()
                    g.client.loop_stop()
            client.disable_logger()  # paho logs a harmless race of its loop thread here
            client.disconnect()
            client.loop_stop()
            if ledger:
                ledger.close()
        log.info("%s", s.line())
        return s

    def _node_transitions(
        self, step: Step, before: frozenset[str], pending: dict[str | None, deque[Any]]
    ) -> None:
        """A gateway fault on any unit of a Sparkplug edge node takes the node down."""
        down_before = {id(self.nodes[u]) for u in before if u in self.nodes}
        down_now = {id(self.nodes[u]) for u in step.offline_units if u in self.nodes}
        for node in {id(n): n for n in self.nodes.values()}.values():
            key = f"sp:{node.group}/{node.edge}"
            if id(node) in down_now - down_before:
                node.offline()
                self.summary.lost += sum(not i.is_published() for i in pending.pop(key, ()))
                self.summary.events.append(
                    f"{iso(self._ns(step.t_s))} edge node {node.group}/{node.edge} offline (NDEATH)"
                )
            elif id(node) in down_before - down_now:
                node.online(self._ns(step.t_s) // 1_000_000)
                self.summary.events.append(
                    f"{iso(self._ns(step.t_s))} edge node {node.group}/{node.edge} online"
                )

    def _ns(self, t_s: float) -> int:
        return self.sim.start_ns + round(t_s * 1e9)

    def _status(self, t_s: float) -> str:
        s = self.summary
        rate = s.readings / s.wall_s if s.wall_s else 0.0
        active = [e.id for e in self.sim.events if e.active(t_s)]
        return (
            f"[sim {iso(self._ns(t_s))} +{t_s:,.0f}s] sent {s.readings:,} ({rate:,.0f}/s)"
            f" behind {s.behind_s:.1f}s active: {', '.join(active) or '-'}"
        )

    def _publish(
        self, client: mqtt.Client, gw: dict[str, mqtt.Client], step: Step, ledger: IO[str] | None
    ) -> list[tuple[str | None, Any]]:
        """Publish one step; return (gateway unit or None for the main client, info)."""
        if not len(step.sensor):
            return []
        qos = self.settings.mqtt.qos
        uniq, inverse = np.unique(step.ts_ns, return_inverse=True)  # mostly one per step
        stamps = [iso(t) for t in uniq.tolist()]
        ts = [stamps[k] for k in inverse.ravel().tolist()]
        values = self.sim.instruments.rounded(step.sensor, step.value)
        infos: list[tuple[str | None, Any]] = []
        sensors = step.sensor.tolist()
        bad = step.malformed.tolist()
        batch = self.settings.simulator.format == "batch"
        groups: dict[str, list[dict[str, Any]]] = {}
        Rd = tuple[int, float, int]
        sp: dict[int, tuple[EdgeNode, list[Rd], list[Rd]]] = {}
        ts_ms = (step.ts_ns // 1_000_000).tolist()
        for k, i in enumerate(sensors):  # one MQTT message per reading (or per unit below)
            ref = self.registry.sensors[i]
            node = self.nodes.get(ref.unit.id)
            if node is not None:  # Sparkplug: collected per edge node, published below
                _n, good, broken = sp.setdefault(id(node), (node, [], []))
                (broken if bad[k] else good).append((i, values[k], ts_ms[k]))
                continue
            key = ref.unit.id if ref.unit.id in gw else None
            c = gw[key] if key is not None else client
            if bad[k]:
                payload = _MALFORMED[self._malformed_n % len(_MALFORMED)](ts[k], values[k])
                self._malformed_n += 1
                self.summary.malformed += 1
                infos.append((key, c.publish(self.topics[i], payload, qos=qos)))
                continue
            if batch:
                groups.setdefault(ref.unit.id, []).append(
                    {"sensor": ref.sensor.id, "ts": ts[k], "value": values[k]}
                )
            else:
                body = f'{{"ts":"{ts[k]}","value":{values[k]!r}}}'
                infos.append((key, c.publish(self.topics[i], body, qos=qos)))
            if ledger:
                ledger.write(json.dumps({"sensor": ref.sensor.id, "ts": ts[k], "value": values[k]}))
                ledger.write("\n")
        for unit, readings in groups.items():
            key = unit if unit in gw else None
            c = gw[key] if key is not None else client
            body = json.dumps({"readings": readings})
            infos.append((key, c.publish(self.unit_topic[unit], body, qos)))
        now_ms = self._ns(step.t_s) // 1_000_000
        dropped = 0
        for node, node_readings, broken in sp.values():
            if node.client is None:
                dropped += len(node_readings) + len(broken)
                continue
            broken_idx = [b[0] for b in broken]
            sent_infos, sent = node.publish(node_readings, broken_idx, now_ms)
            infos += [(f"sp:{node.group}/{node.edge}", info) for info in sent_infos]
            self.summary.malformed += len(broken)
            if ledger:
                for idx, v, t_ms in sent:
                    sid = self.registry.sensors[idx].sensor.id
                    ledger.write(json.dumps({"sensor": sid, "ts": iso(t_ms * 1e6), "value": v}))
                    ledger.write("\n")
        self.summary.dropped += dropped
        self.summary.readings += len(sensors) - dropped
        self.summary.messages += len(infos)
        PUBLISHED.inc(len(sensors))
        return infos


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of the events is set."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    _done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
