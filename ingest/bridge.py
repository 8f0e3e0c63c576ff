"""The MQTT -> Kafka bridge: receive, validate, produce, and only then acknowledge.

Delivery: the bridge subscribes with QoS 1 on a persistent session and acknowledges
an MQTT message only after every Kafka record made from it (readings or dead letters)
has been acknowledged by Kafka (acks=all, idempotent producer). A crash before that
makes the broker redeliver; the database ignores the resulting duplicates.

Backpressure: the MQTT 5 Receive Maximum we announce is ``ingest.inflight_budget``,
so the broker never has more than that many unacknowledged messages out to us. When
Kafka is slow or down nothing gets acknowledged, the budget fills up, and the broker
keeps the rest queued in our session: memory stays bounded, nothing is dropped, and
the bridge catches up by itself when Kafka returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from aiokafka.errors import KafkaError

from common import kafka as kafka_clients
from common import mqtt as mqtt_clients
from common.deadletter import DeadLetter
from common.registry import Registry
from ingest import metrics
from ingest.acks import ConnectionAcks
from ingest.batching import Batcher
from ingest.mqtt_client import ReadAllClient
from ingest.parse_json import JsonContext, parse_json
from ingest.producer import ProducerSlot
from ingest.rejection import Rejection
from ingest.sensors import SensorTable
from ingest.settings import IngestSettings
from ingest.sparkplug import SPARKPLUG_NAMESPACE, SparkplugHost

log = logging.getLogger(__name__)

Record = tuple[str, bytes, bytes]  # Kafka topic, key, value
SHUTDOWN_GRACE_S = 5.0
DLQ_PAYLOAD_MAX = 65_536  # bytes of the raw payload kept in a dead letter
DLQ_LETTERS_MAX = 100  # dead letters per MQTT message


@dataclass(slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ns: int
    connection: int = 0  # ConnectionAcks number of the connection it arrived on


@dataclass(slots=True)
class Flush:
    """Records made from a list of MQTT messages, and the task producing them."""

    messages: list[Inbound]
    task: asyncio.Task[None]


class Bridge:
    """Consumes MQTT messages, validates them and produces readings / dead letters."""

    def __init__(self, settings: IngestSettings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        opts = settings.ingest
        self.sensors = SensorTable(registry, auto_register=opts.auto_register)
        self._json = JsonContext(self.sensors, settings.mqtt.topic_prefix, opts)
        self._sites = {site.id for site in registry.plant.sites}
        self._site_of_unit = {unit: site.id for unit, (site, _u) in registry.units.items()}
        self.sparkplug = SparkplugHost(registry, self.sensors, self._publish, opts)
        # paho's network thread appends here and wakes the event loop at most once per
        # drain (not once per message: call_soon_threadsafe costs a syscall).
        self._inbox: deque[Inbound] = deque()
        self._wake = asyncio.Event()
        self._signalled = False
        self._client: mqtt.Client | None = None
        self._acks = ConnectionAcks()
        self._mqtt_ok = False
        self._kafka_ok = False
        self._inflight = 0
        # /healthz reads inflight + inbox from the HTTP thread: between its two reads an
        # ack could free a slot and paho append the broker's next message, counting one
        # message twice (seen under CPU contention: 305 held > budget 300). Counting out,
        # appending and reading the sum hold this lock.
        self._held_lock = threading.Lock()
        metrics.INFLIGHT_BUDGET.set(opts.inflight_budget)

    # ------------------------------------------------------------------ health

    def healthy(self) -> bool:
        """Connected to MQTT and Kafka."""
        return self._mqtt_ok and self._kafka_ok

    def health(self) -> dict[str, object]:
        """Details for /healthz."""
        return {
            "mqtt": self._mqtt_ok,
            "kafka": self._kafka_ok,
            "inflight": self._held(),
            "inflight_budget": self.settings.ingest.inflight_budget,
        }

    def _held(self) -> int:
        """Messages received and not yet acknowledged (or given back)."""
        with self._held_lock:
            return self._inflight + len(self._inbox)

    def _set_kafka(self, ok: bool) -> None:
        self._kafka_ok = ok
        metrics.KAFKA_CONNECTED.set(int(ok))

    # ------------------------------------------------------------------ main loop

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop`` is set, then flush what is in hand, ack, and return."""
        kafka = self.settings.kafka
        opts = self.settings.ingest
        topics = (kafka.readings_topic, kafka.dlq_topic)
        if not await kafka_clients.wait_for_topics(kafka, stop, "ingest bridge", *topics):
            return
        producer = ProducerSlot(
            kafka,
            compression_type=None if opts.compression == "none" else opts.compression,
            linger_ms=opts.kafka_linger_ms,
            # fail (and so retry with a fresh producer) within seconds, not 40 s
            request_timeout_ms=15_000,
            retry_backoff_ms=500,  # while Kafka is down, do not spin on metadata requests
        )
        await producer.get()
        self._set_kafka(True)
        client = self._client = self._mqtt_client(asyncio.get_running_loop())
        mqtt_clients.connect(
            client, self.settings.mqtt, persistent=True, receive_maximum=opts.inflight_budget
        )
        client.loop_start()
        pending: deque[Flush] = deque()
        watch = asyncio.create_task(self._watch_kafka(producer, stop), name="kafka-watch")
        stopping = asyncio.create_task(stop.wait(), name="stopping")
        try:
            while not stop.is_set():
                batch = await self._collect(stop)
                if batch:
                    records = self._records(batch)
                    task = asyncio.create_task(self._produce(producer, records, stop))
                    pending.append(Flush(batch, task))
                # MQTT wants PUBACKs in the order the PUBLISHes came: ack flushes in order.
                while pending and (
                    pending[0].task.done() or len(pending) > opts.max_pending_flushes
                ):
                    if not pending[0].task.done():  # full pipeline: wait, unless stopping
                        await asyncio.wait(
                            {pending[0].task, stopping}, return_when=asyncio.FIRST_COMPLETED
                        )
                        if not pending[0].task.done():
                            break
                    await self._complete(pending.popleft(), client)
            # Shutdown: give in-flight flushes a bounded time; what Kafka has not acked
            # by then stays unacknowledged in our MQTT session and is redelivered later.
            deadline = time.monotonic() + SHUTDOWN_GRACE_S
            while pending:
                flush = pending.popleft()
                remaining = max(deadline - time.monotonic(), 0.01)
                try:
                    await asyncio.wait_for(asyncio.shield(flush.task), remaining)
                except (TimeoutError, RuntimeError):
                    flush.task.cancel()
                    log.warning(
                        "stopping: %d messages left unacknowledged at the broker",
                        len(flush.messages),
                    )
                    continue
                await self._complete(flush, client)
        finally:
            watch.cancel()
            stopping.cancel()
            for flush in pending:
                flush.task.cancel()
            # Unacknowledged messages stay in our session at the broker: not lost.
            client.disconnect()
            client.loop_stop()
            await producer.close()
            log.info("ingest bridge stopped")

    async def _complete(self, flush: Flush, client: mqtt.Client) -> None:
        try:
            await flush.task
            delivered = True
        except RuntimeError:
            # Only when stopping while Kafka is unreachable: leave these messages
            # unacknowledged in our session at the broker, which redelivers them.
            log.warning(
                "stopping: %d messages left unacknowledged at the broker", len(flush.messages)
            )
            delivered = False
        # Counted out before the acks: each ack lets the broker send the next message at
        # once (on paho's thread, into the inbox), and /healthz, read from another thread,
        # must not count it on top of the one it replaces.
        with self._held_lock:
            self._inflight -= len(flush.messages)
        metrics.INFLIGHT.set(self._held())
        if delivered:
            stale = self._acks.ack(client, flush.messages)
            if stale:
                # Their packet ids may name other messages now (see ingest.acks); the
                # broker sends them again if it still has them.
                metrics.STALE_ACKS.inc(stale)
                log.info(
                    "%d messages forwarded but not acknowledged: they came on an earlier"
                    " MQTT connection",
                    stale,
                )

    async def _watch_kafka(self, producer: ProducerSlot, stop: asyncio.Event) -> None:
        """Keep the Kafka connectivity flag honest while no traffic flows."""
        while not stop.is_set():
            await asyncio.sleep(5)
            try:
                current, _gen = await asyncio.wait_for(producer.get(), 10)
                await asyncio.wait_for(current.client.fetch_all_metadata(), 5)
                self._set_kafka(True)
            except (KafkaError, TimeoutError, OSError):
                self._set_kafka(False)

    def _publish(self, topic: str, payload: bytes) -> None:
        """Publish a command (Sparkplug NCMD) from the bridge's own MQTT session."""
        if self._client is not None:
            self._client.publish(topic, payload, qos=0)

    # ------------------------------------------------------------------ MQTT

    def _filters(self) -> list[str]:
        opts = self.settings.ingest
        prefix = self.settings.mqtt.topic_prefix
        filters = [f"{prefix}/+/+/+", f"{prefix}/+/+"]
        if opts.share_group:
            filters = [f"$share/{opts.share_group}/{f}" for f in filters]
        if opts.sparkplug:
            # Not shared: alias tables and sequence numbers need every message of a node.
            filters += [f"{SPARKPLUG_NAMESPACE}/{g}/#" for g in self.sparkplug.groups()]
        return filters

    def _mqtt_client(self, loop: asyncio.AbstractEventLoop) -> mqtt.Client:
        opts = self.settings.ingest
        client = mqtt_clients.make_client(
            self.settings.mqtt,
            opts.client_id,
            persistent=True,
            manual_ack=True,
            client_class=ReadAllClient,
        )
        filters = self._filters()

        acks = self._acks

        def on_connect(c: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
            acks.new_connection()
            if reason.is_failure:
                log.error("MQTT connect refused: %s", reason)
                return
            self._mqtt_ok = True
            metrics.MQTT_CONNECTED.set(1)
            c.subscribe([(f, int(self.settings.mqtt.qos)) for f in filters])
            log.info(
                "MQTT connected to %s:%d (session present: %s), subscribing to %s",
                self.settings.mqtt.host,
                self.settings.mqtt.port,
                flags.session_present,
                filters,
            )

        def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            acks.new_connection()
            self._mqtt_ok = False
            metrics.MQTT_CONNECTED.set(0)
            log.warning("MQTT disconnected: %s (paho reconnects)", reason)

        inbox = self._inbox

        held_lock = self._held_lock

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            item = Inbound(
                msg.topic, bytes(msg.payload), msg.mid, msg.qos, time.time_ns(), acks.connection
            )
            with held_lock:
                inbox.append(item)
            if not self._signalled:
                self._signalled = True
                loop.call_soon_threadsafe(self._wake.set)

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
        """Wait for messages, then gather more for up to linger_ms."""
        opts = self.settings.ingest
        inbox = self._inbox
        limit = opts.max_batch_messages
        if not inbox and not await self._wait(0.2):
            return []
        batch: list[Inbound] = []
        deadline = time.monotonic() + opts.linger_ms / 1000
        while not stop.is_set():
            while inbox and len(batch) < limit:
                batch.append(inbox.popleft())
            remaining = deadline - time.monotonic()
            if len(batch) >= limit or remaining <= 0 or not await self._wait(remaining):
                break
        self._inflight += len(batch)
        metrics.INFLIGHT.set(self._held())
        return batch

    async def _wait(self, wait_s: float) -> bool:
        """Wait until paho signals new messages; False on timeout."""
        # Re-arm paho's wake-up only now: while we work, it appends without signalling.
        self._signalled = False
        self._wake.clear()
        if self._inbox:  # arrived between our last drain and re-arming
            return True
        try:
            await asyncio.wait_for(self._wake.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ Kafka

    async def _produce(
        self, producer: ProducerSlot, records: list[Record], stop: asyncio.Event
    ) -> None:
        """Send every record and wait for its ack; re-send only the ones that failed."""
        delay = 0.5
        todo = records
        start = time.perf_counter()
        while True:
            results: list[Any] = []
            generation = None
            try:
                current, generation = await producer.get()
                futures = [await current.send(t, value=v, key=k) for t, k, v in todo]
                results = await asyncio.gather(*futures, return_exceptions=True)
            except (KafkaError, OSError) as exc:
                results = [exc] * len(todo)
            failed: list[tuple[Record, BaseException | None]] = [
                (rec, res)
                for rec, res in zip(todo, results, strict=False)
                if isinstance(res, Exception)
            ]
            failed += [(rec, None) for rec in todo[len(results) :]]
            if not failed:
                self._set_kafka(True)
                metrics.PRODUCE_SECONDS.observe(time.perf_counter() - start)
                return
            # Not acking keeps the messages at the broker; retry with backoff so a Kafka
            # outage backs up into MQTT instead of losing readings.
            self._set_kafka(False)
            if generation is not None:
                await producer.discard(generation)
            metrics.KAFKA_RETRIES.inc(len(failed))
            log.warning(
                "Kafka produce failed for %d of %d records (%s); retrying in %.1f s",
                len(failed),
                len(todo),
                failed[0][1],
                delay,
            )
            if stop.is_set():
                raise RuntimeError("stopping with records Kafka did not acknowledge")
            todo = [rec for rec, _ in failed]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay * (0.5 + random.random()))
            delay = min(delay * 2, 10.0)

    def _records(self, batch: list[Inbound]) -> list[Record]:
        """Kafka records for a list of MQTT messages: readings per unit, dead letters."""
        kafka = self.settings.kafka
        opts = self.settings.ingest
        prefix = self.settings.mqtt.topic_prefix
        plen = len(prefix) + 1
        out = Batcher()
        records: list[Record] = []
        sites: dict[str, int] = {}
        for item in batch:
            topic = item.topic
            if topic.startswith(SPARKPLUG_NAMESPACE + "/"):
                site = "sparkplug"
                rejections = self.sparkplug.handle(topic, item.payload, item.received_ns, out)
            else:
                site = topic[plen:].split("/", 1)[0] if topic.startswith(prefix) else "unknown"
                rejections = parse_json(topic, item.payload, item.received_ns, self._json, out)
            sites[site] = sites.get(site, 0) + 1
            if rejections:
                records += self._dead_letters(item, rejections)
        for site, count in sites.items():
            label = site if site in self._sites or site == "sparkplug" else "unknown"
            metrics.MESSAGES.labels(label).inc(count)
        for key, value, count, unit in out.records(opts.max_record_readings):
            metrics.READINGS.labels(self._site_of_unit.get(unit, "unknown")).inc(count)
            records.append((kafka.readings_topic, key, value))
        return records

    def _dead_letters(self, item: Inbound, rejections: list[Rejection]) -> list[Record]:
        """Dead letters for one message, bounded in size and number.

        A letter keeps at most DLQ_PAYLOAD_MAX bytes of the payload (a bigger one would
        exceed Kafka's request size and block the bridge), and one message yields at most
        DLQ_LETTERS_MAX letters (a 1 MB batch of bad entries must not become thousands
        of copies of itself); every rejection is still counted in the metrics.
        """
        dlq = self.settings.kafka.dlq_topic
        now = datetime.now(UTC)
        payload = item.payload
        note = ""
        if len(payload) > DLQ_PAYLOAD_MAX:
            note = f" (payload truncated to {DLQ_PAYLOAD_MAX} of {len(payload)} bytes)"
            payload = payload[:DLQ_PAYLOAD_MAX]
        out: list[Record] = []
        for n, rej in enumerate(rejections):
            metrics.REJECTED.labels(rej.reason).inc()
            if n >= DLQ_LETTERS_MAX:
                continue
            message = rej.message + note
            if n == DLQ_LETTERS_MAX - 1 and len(rejections) > DLQ_LETTERS_MAX:
                more = len(rejections) - DLQ_LETTERS_MAX
                message += f"; {more} more rejected entries of this message not listed"
            letter = DeadLetter(item.topic, rej.reason, message, payload, now, rej.index)
            log.info("rejected %s on %s: %s", rej.reason, item.topic, rej.message)
            out.append((dlq, item.topic.encode(), letter.to_json()))
        return out
