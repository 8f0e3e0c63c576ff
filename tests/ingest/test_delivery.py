"""Delivery guarantees on real Mosquitto and Kafka: two bridges on one shared
subscription deliver every reading exactly once. (A Kafka outage under load, with the
bridge's bounded memory and a clean SIGTERM meanwhile, is covered by
tests/faults/test_faults.py::test_kill_kafka_bridge_holds_bounded_backlog_and_stops_cleanly.)"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
from aiokafka import AIOKafkaConsumer
from paho.mqtt.enums import CallbackAPIVersion

from common.readings import decode_batch
from common.settings import BaseProcessSettings
from tests.fixtures.processes import Service, ServiceFactory, http_base, metric, wait_until
from tests.fixtures.services import Isolation

pytestmark = pytest.mark.integration

SITE = "haibin-terminal"
SENSORS = [("TK101", "TK101-PT-01"), ("TK101", "TK101-TT-01"), ("TK102", "TK102-PT-01")]


def health(service: Service) -> dict[str, object]:
    # 503 while unhealthy still carries the JSON body
    return dict(httpx.get(http_base(service) + "/healthz", timeout=5).json())


class LoadPublisher:
    """Publishes numbered single readings with QoS 1 from a thread, at a steady rate."""

    def __init__(self, settings: BaseProcessSettings, prefix: str, rate: float) -> None:
        self.prefix = prefix
        self.rate = rate
        self.t0_ms = int(time.time() * 1000)
        self.sent = 0
        self._stop = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.connect(settings.mqtt.host, settings.mqtt.port)
        self.client.loop_start()
        self._infos: list[mqtt.MQTTMessageInfo] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def expected(self) -> set[tuple[str, int]]:
        """(sensor, ts_ns) of every reading published."""
        return {(self._sensor(i)[1], (self.t0_ms + i) * 1_000_000) for i in range(self.sent)}

    def _sensor(self, i: int) -> tuple[str, str]:
        return SENSORS[i % len(SENSORS)]

    def publish_one(self) -> None:
        i = self.sent
        unit, sensor = self._sensor(i)
        payload = json.dumps({"ts": self.t0_ms + i, "value": 5 + (i % 100) / 10})
        self._infos.append(self.client.publish(f"{self.prefix}/{SITE}/{unit}/{sensor}", payload, 1))
        self.sent += 1

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - start) * self.rate)
            while self.sent < due:
                self.publish_one()
            time.sleep(0.005)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing and wait until the broker acknowledged everything sent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for info in self._infos:
            info.wait_for_publish(30)
            assert info.is_published()
        self.client.disconnect()
        self.client.loop_stop()


def collect(bootstrap: str, topic: str, expected: int, timeout_s: float) -> list[tuple[str, int]]:
    """Every (sensor, ts_ns) on ``topic``: read until ``expected`` distinct ones, plus 2 s."""

    async def run() -> list[tuple[str, int]]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        out: list[tuple[str, int]] = []
        try:
            deadline = time.monotonic() + timeout_s
            settle: float | None = None
            while time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        batch = decode_batch(record.value)
                        out += zip(batch.sensors().tolist(), batch.ts_ns.tolist(), strict=True)
                if settle is None and len(set(out)) >= expected:
                    settle = time.monotonic() + 2  # anything more would be a duplicate
                if settle is not None and time.monotonic() > settle:
                    break
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def test_two_bridges_share_the_load_and_deliver_each_reading_once(
    stack: BaseProcessSettings, isolation: Isolation, service_factory: ServiceFactory
) -> None:
    bridges = [
        service_factory("ingest", env={"CHEMWATCH_INGEST__CLIENT_ID": f"{isolation.tag}-b{i}"})
        for i in range(2)
    ]
    for b in bridges:
        wait_until(lambda b=b: "subscription confirmed" in b.log(), 60, f"{b.name} to subscribe")
    load = LoadPublisher(stack, isolation.mqtt_prefix, rate=0)
    for _ in range(3000):
        load.publish_one()
    load.stop()
    got = collect(stack.kafka.bootstrap_servers, isolation.readings_topic, load.sent, 60)
    assert set(got) == load.expected()
    assert len(got) == load.sent  # exactly once: no duplicates while both are healthy
    taken = [metric(b, "chemwatch_ingest_messages_total") for b in bridges]
    assert sum(taken) == load.sent
    assert min(taken) > 0.1 * load.sent, f"one bridge took almost nothing: {taken}"
    for b in bridges:
        h = health(b)
        assert (h["ok"], h["mqtt"], h["kafka"], h["inflight"]) == (True, True, True, 0)
        assert metric(b, "chemwatch_ingest_readings_total") == metric(
            b, "chemwatch_ingest_messages_total"
        )  # one reading per message, per site
    for b in bridges:
        assert b.stop() == 0, b.log()
