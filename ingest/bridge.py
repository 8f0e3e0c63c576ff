"""The MQTT -> Kafka bridge.

Delivery: the bridge subscribes with QoS 1 on a persistent session and acknowledges
an MQTT message only after every Kafka record made from it (readings or dead letters)
has been acknowledged by Kafka (acks=all, idempotent producer). A crash before that
makes the broker redeliver; the database ignores the resulting duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from common import kafka as kafka_clients
from common import mqtt as mqtt_clients
from common.deadletter import DeadLetter
from common.readings import ReadingBatch, encode_batch
from common.registry import Registry
from ingest import metrics
from ingest.parse import parse_message
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ns: int


class Bridge:
    """Consumes MQTT messages, validates them and produces readings / dead letters."""

    def __init__(self, settings: IngestSettings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self._queue: asyncio.Queue[Inbound] = asyncio.Queue()
        self._connected = False
        self._producer: AIOKafkaProducer | None = None

    def healthy(self) -> bool:
        """Connected to MQTT and Kafka producer running."""
        return self._connected and self._producer is not None

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop`` is set, then flush what is in hand and exit."""
        kafka = self.settings.kafka
        await kafka_clients.ensure_topics(kafka, kafka.readings_topic, kafka.dlq_topic)
        producer = kafka_clients.make_producer(kafka)
        await producer.start()
        self._producer = producer
        client = self._mqtt_client(asyncio.get_running_loop())
        mqtt_clients.connect(client, self.settings.mqtt, persistent=True)
        client.loop_start()
        try:
            while not stop.is_set():
                batch = await self._collect(stop)
                if batch:
                    await self._flush(producer, batch, stop)
                    for item in batch:
                        client.ack(item.mid, item.qos)
        finally:
            client.disconnect()
            client.loop_stop()
            await producer.stop()
            self._producer = None
            log.info("ingest bridge stopped")

    def _mqtt_client(self, loop: asyncio.AbstractEventLoop) -> mqtt.Client:
        opts = self.settings.ingest
        client = mqtt_clients.make_client(
            self.settings.mqtt, opts.client_id, persistent=True, manual_ack=True
        )
        prefix = self.settings.mqtt.topic_prefix
        filters = [f"{prefix}/+/+/+", f"{prefix}/+/+"]
        if opts.share_group:
            filters = [f"$share/{opts.share_group}/{f}" for f in filters]

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                log.error("MQTT connect refused: %s", reason)
                return
            self._connected = True
            metrics.MQTT_CONNECTED.set(1)
            c.subscribe([(f, self.settings.mqtt.qos) for f in filters])
            log.info(
                "MQTT connected to %s:%d, subscribed to %s",
                self.settings.mqtt.host,
                self.settings.mqtt.port,
                filters,
            )

        def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            self._connected = False
            metrics.MQTT_CONNECTED.set(0)
            log.warning("MQTT disconnected: %s (paho reconnects)", reason)

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            item = Inbound(msg.topic, msg.payload, msg.mid, msg.qos, time.time_ns())
            loop.call_soon_threadsafe(self._queue.put_nowait, item)

        def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
            failed = [c for c in codes if c.is_failure]
            if failed:
                log.error("MQTT subscription refused: %s", failed)
            else:
                log.info("MQTT subscription confirmed")

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        return client

    async def _collect(self, stop: asyncio.Event) -> list[Inbound]:
        """Wait for one message, then gather more for up to linger_ms."""
        opts = self.settings.ingest
        try:
            first = await asyncio.wait_for(self._queue.get(), timeout=0.2)
        except TimeoutError:
            return []
        batch = [first]
        deadline = time.monotonic() + opts.linger_ms / 1000
        while len(batch) < opts.max_batch_readings and not stop.is_set():
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        metrics.QUEUE_DEPTH.set(self._queue.qsize())
        return batch

    async def _flush(
        self, producer: AIOKafkaProducer, batch: list[Inbound], stop: asyncio.Event
    ) -> None:
        records = self._records(batch)
        delay = 0.5
        while True:
            try:
                with metrics.FLUSH_SECONDS.time():
                    futures = [await producer.send(t, value=v, key=k) for t, k, v in records]
                    await asyncio.gather(*futures)
                return
            except KafkaError as exc:
                # Not acking keeps the messages at the broker; retry with backoff so a
                # Kafka outage backs up into MQTT instead of losing readings.
                metrics.KAFKA_RETRIES.inc()
                log.warning("Kafka produce failed (%s); retrying in %.1f s", exc, delay)
                if stop.is_set():
                    raise
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 10.0)

    def _records(self, batch: list[Inbound]) -> list[tuple[str, bytes, bytes]]:
        """Kafka (topic, key, value) for a list of MQTT messages."""
        kafka = self.settings.kafka
        prefix = self.settings.mqtt.topic_prefix
        per_unit: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
        records: list[tuple[str, bytes, bytes]] = []
        metrics.MESSAGES.inc(len(batch))
        for item in batch:
            parsed = parse_message(
                item.topic,
                item.payload,
                item.received_ns,
                self.registry,
                prefix,
                self.settings.ingest,
            )
            for ref, ts, value, quality in zip(
                parsed.sensor, parsed.ts_ns, parsed.value, parsed.quality, strict=True
            ):
                cols = per_unit[ref.unit.id]
                cols["sensor"].append(ref.sensor.id)
                cols["ts"].append(ts)
                cols["value"].append(value)
                cols["quality"].append(quality)
                cols["ingest"].append(item.received_ns)
            for rej in parsed.rejections:
                metrics.REJECTED.labels(rej.reason).inc()
                letter = DeadLetter(
                    item.topic,
                    rej.reason,
                    rej.message,
                    item.payload,
                    datetime.now(UTC),
                    rej.index,
                )
                log.info("rejected %s on %s: %s", rej.reason, item.topic, rej.message)
                records.append((kafka.dlq_topic, item.topic.encode(), letter.to_json()))
        for unit_id, cols in per_unit.items():
            readings = ReadingBatch.from_columns(
                unit_id,
                cols["sensor"],
                np.array(cols["ts"]),
                np.array(cols["ingest"]),
                np.array(cols["value"]),
                np.array(cols["quality"]),
            )
            metrics.READINGS.inc(len(readings))
            records.append((kafka.readings_topic, unit_id.encode(), encode_batch(readings)))
        return records
