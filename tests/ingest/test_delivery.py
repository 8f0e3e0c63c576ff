"""Delivery guarantees on real Mosquitto and Kafka: two bridges on one shared
subscription deliver every reading exactly once; a 20 s Kafka outage under load loses
nothing and keeps the bridge's memory bounded (the broker buffers instead)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import psutil
import pytest
from aiokafka import AIOKafkaConsumer
from paho.mqtt.enums import CallbackAPIVersion

from common.readings import decode_batch
from common.settings import BaseProcessSettings
from tests.fixtures.processes import Service, ServiceFactory, wait_until
from tests.fixtures.services import Isolation
from tests.ingest.private_kafka import PrivateKafka

pytestmark = pytest.mark.integration

SITE = "haibin-terminal"
SENSORS = [("TK101", "TK101-PT-01"), ("TK101", "TK101-TT-01"), ("TK102", "TK102-PT-01")]


def http_base(service: Service) -> str:
    """Where a service started with http.port 0 serves /metrics and /healthz."""
    found = wait_until(
        lambda: re.search(r"metrics and health on (http://\S+)", service.log()), 60, "http port"
    )
    return found.group(1)


def metric(service: Service, name: str) -> float:
    """Sum of every sample of a Prometheus metric."""
    text = httpx.get(http_base(service) + "/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


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


def test_kafka_outage_under_load_loses_nothing_and_memory_stays_bounded(
    stack: BaseProcessSettings,
    isolation: Isolation,
    service_factory: ServiceFactory,
    tmp_path: Path,
) -> None:
    kafka = PrivateKafka(tmp_path / "stack")
    kafka.up()
    budget = 300
    try:
        env = {
            "CHEMWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
            "CHEMWATCH_INGEST__INFLIGHT_BUDGET": str(budget),
        }
        ingest = service_factory("ingest", env=env)
        wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")
        proc = psutil.Process(ingest.proc.pid)
        load = LoadPublisher(stack, isolation.mqtt_prefix, rate=150)
        load.start()
        time.sleep(2)
        rss_before = proc.memory_info().rss
        kafka.down()
        outage_end = time.monotonic() + 20
        held, rss, kafka_flags = [], [], []
        while time.monotonic() < outage_end:
            h = health(ingest)
            held.append(int(str(h["inflight"])))
            kafka_flags.append(h["kafka"])
            rss.append(proc.memory_info().rss)
            time.sleep(0.5)
        kafka.up()
        time.sleep(2)
        load.stop()
        got = collect(kafka.bootstrap, isolation.readings_topic, load.sent, 120)
        missing = load.expected() - set(got)
        assert not missing, f"{len(missing)} of {load.sent} readings lost"
        assert load.sent > 150 * 25  # the load really ran through the outage
        assert False in kafka_flags  # /healthz told the truth
        assert max(held) <= budget  # the broker kept the rest: memory is bounded
        assert max(held) >= budget * 0.8  # ... and the budget was really used up
        assert max(rss) - rss_before < 64 * 2**20
        assert ingest.alive(), ingest.log()

        # SIGTERM while Kafka is down: exits 0 in time, leaves the messages at the broker,
        # and the next bridge on the same persistent session delivers them.
        kafka.down()
        late = LoadPublisher(stack, isolation.mqtt_prefix, rate=0)
        for _ in range(50):
            late.publish_one()
        late.stop()
        assert ingest.stop() == 0, ingest.log()
        kafka.up()
        again = service_factory("ingest", env=env)
        wanted = load.expected() | late.expected()
        got = collect(kafka.bootstrap, isolation.readings_topic, len(wanted), 90)
        assert wanted <= set(got), f"{len(wanted - set(got))} readings lost across the restart"
        assert again.stop() == 0, again.log()
    finally:
        kafka.down()
