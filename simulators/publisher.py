"""Publish the plant model's readings over MQTT (JSON, QoS 1) on a schedule."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import IO, Any

import numpy as np
from prometheus_client import Counter

from common import mqtt as mqtt_clients
from common.registry import Registry
from simulators.plant import PlantModel
from simulators.settings import SimulatorSettings

log = logging.getLogger(__name__)
PUBLISHED = Counter("chemwatch_simulator_published_total", "Readings published")


class Publisher:
    """Publishes every sensor at its registry interval divided by ``speed``."""

    def __init__(self, settings: SimulatorSettings, registry: Registry, model: PlantModel) -> None:
        self.settings = settings
        self.registry = registry
        self.model = model
        self.period_s = np.array([r.sensor.interval_s for r in registry]) / settings.simulator.speed
        prefix = settings.mqtt.topic_prefix
        self.topics = [f"{prefix}/{r.site.id}/{r.unit.id}/{r.sensor.id}" for r in registry]
        self.connected = False

    async def run(self, stop: asyncio.Event) -> int:
        """Publish until ``stop`` or the configured duration; return readings published."""
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
        ledger = opts.ledger.open("a", encoding="utf-8") if opts.ledger else None
        count, pending = 0, []
        try:
            await _first(ready, stop)
            start = time.monotonic()
            next_due = np.zeros(len(self.registry))
            while not stop.is_set():
                t = time.monotonic() - start
                if opts.duration_s is not None and t >= opts.duration_s:
                    break
                due = np.flatnonzero(next_due <= t)
                if len(due):
                    pending += self._publish(client, due, t, ledger)
                    count += len(due)
                    next_due[due] += self.period_s[due]
                    pending = [p for p in pending if not p.is_published()]
                wait = max(0.0, float(next_due.min()) - (time.monotonic() - start))
                await asyncio.sleep(min(wait, 0.5))
            for info in pending:  # QoS 1: wait for every PUBACK before we report done
                await asyncio.to_thread(info.wait_for_publish, 30)
        finally:
            client.disconnect()
            client.loop_stop()
            if ledger:
                ledger.close()
        log.info("published %d readings", count)
        return count

    def _publish(self, client: Any, due: np.ndarray, t: float, ledger: IO[str] | None) -> list[Any]:
        values = self.model.values(t, due)
        stamp = datetime.now(UTC).isoformat(timespec="microseconds")
        infos = []
        for i, value in zip(due.tolist(), values.tolist(), strict=True):  # one MQTT message each
            sensor = self.registry.sensors[i].sensor.id
            payload = json.dumps({"ts": stamp, "value": value})
            infos.append(client.publish(self.topics[i], payload, qos=self.settings.mqtt.qos))
            if ledger:
                ledger.write(json.dumps({"sensor": sensor, "ts": stamp, "value": value}) + "\n")
        PUBLISHED.inc(len(due))
        return infos


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of the events is set."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    _done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
