"""Latency probes: readings that cross a limit on a schedule, and where they show up.

A probe publisher visits the probe sensors in turn, ``rate`` publishes per second, and
alternates each sensor between a value above its H limit and one below it; the reading's
``ts`` is the publish time, so every activation is one condition event and one alarm
whose ``activated_at`` is that publish time. Three observers record when each probe
reading shows up:

(a) the database: the commit time of the transaction that stored the row
    (``pg_xact_commit_timestamp(xmin)``, exact, needs ``track_commit_timestamp = on``)
    or, when that is off, the time a reader polling every ``poll_s`` first sees it
    (an upper bound by at most the poll interval plus one query);
(b) the Kafka ``conditions`` topic: when a consumer here receives the event;
(c) the alerting live stream (SSE): when a client here receives the alarm change.

Stage breakdown of each activation (``ProbeLog.stages_ms``), from timestamps the chain
leaves behind: the bridge's ingest time (stored with the reading), the Kafka record
timestamps (CreateTime: when the bridge, resp. the detector worker, handed the record to
its producer), the commit time of the reading row and of the alarm's change-log row
(``pg_xact_commit_timestamp``), and the receipt times here. The Kafka timestamps are
read by consumers in this process (``RecordTimes``), off the path being measured.

Clocks: everything is the host's wall clock (``time.time()``, CLOCK_REALTIME), in the
publisher, in this process and in PostgreSQL (same machine), so latencies are differences
of one clock; the publish time is taken just before paho's ``publish()``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from chemwatch.e2e.plant import PROBE_OFF, PROBE_ON, PROBE_SITE, PROBE_UNIT, probe_id
from common import kafka as kafka_clients
from common import mqtt as mqtt_clients
from common.readings import decode_batch
from common.settings import DatabaseSettings, KafkaSettings, MqttSettings

Key = tuple[str, int]  # (sensor id, source ts in epoch ms)


def _ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


@dataclass
class ProbeLog:
    """Publish times of probe readings and when each observer first saw them."""

    published: dict[Key, float] = field(default_factory=dict)  # every probe reading
    activations: set[Key] = field(default_factory=set)  # the ones above the limit
    db: dict[Key, float] = field(default_factory=dict)
    condition: dict[Key, float] = field(default_factory=dict)
    alarm: dict[Key, float] = field(default_factory=dict)
    # stage timestamps (epoch s) for the breakdown, see STAGES
    ingested: dict[Key, float] = field(default_factory=dict)  # bridge accepted it
    sent_to_kafka: dict[Key, float] = field(default_factory=dict)  # readings CreateTime
    produced: dict[Key, float] = field(default_factory=dict)  # conditions CreateTime
    alarm_committed: dict[Key, float] = field(default_factory=dict)  # change-log commit
    pending_db: set[Key] = field(default_factory=set)  # published, not yet seen stored
    lock: threading.Lock = field(default_factory=threading.Lock)

    def see(self, where: dict[Key, float], key: Key, at: float) -> None:
        with self.lock:
            where.setdefault(key, at)
            if where is self.db:
                self.pending_db.discard(key)

    def oldest_pending_ms(self) -> int | None:
        """Source time of the oldest probe reading not seen in the database yet."""
        with self.lock:
            return min((ts for _, ts in self.pending_db), default=None)

    def latencies_ms(self, t0: float, t1: float) -> dict[str, list[float]]:
        """Publish -> (a) database, (b) condition, (c) alarm, for probes published in
        [t0, t1); the database figure covers every probe reading, the other two the
        activations."""
        with self.lock:
            keys = [k for k, t in self.published.items() if t0 <= t < t1]
            out: dict[str, list[float]] = {"db": [], "condition": [], "alarm": []}
            for k in keys:
                sent = self.published[k]
                if k in self.db:
                    out["db"].append((self.db[k] - sent) * 1000)
                if k in self.activations:
                    for name in ("condition", "alarm"):
                        seen = getattr(self, name).get(k)
                        if seen is not None:
                            out[name].append((seen - sent) * 1000)
            return out

    def stages_ms(self, t0: float, t1: float) -> dict[str, list[float]]:
        """Per activation published in [t0, t1) and seen at every stage: the time
        spent between consecutive stages (see STAGES), in ms."""
        with self.lock:
            out: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
            for k, sent in self.published.items():
                if not (t0 <= sent < t1) or k not in self.activations:
                    continue
                stamps = {"published": sent}
                for name in ("ingested", "sent_to_kafka", "db", "produced", "condition",
                             "alarm_committed", "alarm"):  # fmt: skip
                    stamps[name] = getattr(self, name).get(k)
                if any(v is None for v in stamps.values()):
                    continue
                for name, a, b in STAGES:
                    out[name].append((stamps[b] - stamps[a]) * 1000)
            return out

    def counts(self, t0: float, t1: float) -> dict[str, int]:
        """How many probes were sent in [t0, t1) and how many each observer saw."""
        with self.lock:
            keys = [k for k, t in self.published.items() if t0 <= t < t1]
            acts = [k for k in keys if k in self.activations]
            return {
                "probe_readings": len(keys),
                "probe_activations": len(acts),
                "seen_db": sum(k in self.db for k in keys),
                "seen_condition": sum(k in self.condition for k in acts),
                "seen_alarm": sum(k in self.alarm for k in acts),
            }


# (stage, from, to): the alarm path of a probe activation, stage after stage, then two
# lines beside it (not part of its sum). Since 29 Nov (session 7) the detector worker
# sends a poll's condition events before it writes the poll, so the reading's commit is
# no longer on the alarm path; a consumer in the bench process receiving what alerting
# also receives shows Kafka's own delivery time.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("mqtt -> bridge", "published", "ingested"),
    ("bridge batching -> produce", "ingested", "sent_to_kafka"),
    ("kafka + worker poll/detect -> condition produced", "sent_to_kafka", "produced"),
    ("condition produced -> alarm committed (alerting)", "produced", "alarm_committed"),
    ("alarm committed -> on the SSE stream", "alarm_committed", "alarm"),
    ("beside: kafka + worker poll/detect/write -> reading committed", "sent_to_kafka", "db"),
    ("beside: condition produced -> received (bench consumer)", "produced", "condition"),
)


class _Thread(threading.Thread):
    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def stop(self) -> None:
        self.stopping.set()


class ProbePublisher(_Thread):
    """Publishes probe readings (JSON singles, QoS 1) at ``rate`` per second."""

    def __init__(self, mqtt: MqttSettings, client_id: str, probes: int, rate: float,
                 log: ProbeLog) -> None:  # fmt: skip
        super().__init__("probe-publisher")
        self.mqtt, self.client_id, self.probes, self.rate, self.log = (
            mqtt, client_id, probes, rate, log)  # fmt: skip
        self.paused = threading.Event()

    def run(self) -> None:
        client = mqtt_clients.make_client(self.mqtt, self.client_id, persistent=False)
        mqtt_clients.connect(client, self.mqtt, persistent=False)
        client.loop_start()
        high = [False] * self.probes
        prefix = f"{self.mqtt.topic_prefix}/{PROBE_SITE}/{PROBE_UNIT}"
        try:
            while not client.is_connected():
                time.sleep(0.01)
            n, start = 0, time.monotonic()
            while not self.stopping.is_set():
                delay = start + n / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                n += 1
                if self.paused.is_set():
                    continue
                k = n % self.probes
                sensor = probe_id(k)
                high[k] = not high[k]
                now = time.time()
                ts = int(now * 1000)
                value = PROBE_ON if high[k] else PROBE_OFF
                with self.log.lock:
                    self.log.published[(sensor, ts)] = now
                    self.log.pending_db.add((sensor, ts))
                    if high[k]:
                        self.log.activations.add((sensor, ts))
                client.publish(f"{prefix}/{sensor}", f'{{"ts":{ts},"value":{value}}}', qos=1)
        except BaseException as exc:  # reported by the runner
            self.error = exc
        finally:
            client.disable_logger()  # paho logs a harmless race of its loop thread here
            client.disconnect()
            client.loop_stop()


class _TopicReader(_Thread):
    """Consumes one private topic in its own event loop; ``note`` looks at each poll."""

    offset_reset = "earliest"

    def __init__(self, name: str, kafka: KafkaSettings, topic: str, log: ProbeLog) -> None:
        super().__init__(name)
        self.kafka, self.topic, self.log = kafka, topic, log
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._consume())
        except BaseException as exc:
            self.error = exc

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            **kafka_clients.connection_options(self.kafka),
            auto_offset_reset=self.offset_reset,
            enable_auto_commit=False,
            # the ledger, not this reader, checks the data; CRCs cost this process CPU
            # that the pipeline it measures runs short of
            check_crcs=False,
        )
        await consumer.start()
        # the run created its private topics with the configured partition count
        every = range(self.kafka.partitions)
        consumer.assign([TopicPartition(self.topic, p) for p in self.partitions(every)])
        if self.offset_reset == "latest":
            # resolve the position now: once ``ready``, every later record is seen
            await consumer.seek_to_end()
        self.ready.set()
        try:
            while not self.stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                now = time.time()
                for records in batch.values():
                    self.note(records, now)
        finally:
            await consumer.stop()

    def partitions(self, partitions: range) -> Iterable[int]:
        """The partitions of the topic to read (all of them unless a reader knows better)."""
        return partitions

    def note(self, records: list[Any], now: float) -> None:
        """Note what the probe log needs from one partition's records, received at ``now``."""
        raise NotImplementedError


class ConditionReader(_TopicReader):
    """Consumes the private ``conditions`` topic and notes probe activations."""

    def __init__(self, kafka: KafkaSettings, topic: str, log: ProbeLog) -> None:
        super().__init__("condition-reader", kafka, topic, log)

    def note(self, records: list[Any], now: float) -> None:
        for r in records:
            data = json.loads(r.value)
            sensor = data["sensors"][0]
            if data["state"] == "active" and sensor.startswith("PROBE-"):
                key = (sensor, _ms(data["ts"]))
                self.log.see(self.log.condition, key, now)
                self.log.see(self.log.produced, key, r.timestamp / 1000)


class ReadingsReader(_TopicReader):
    """Consumes the private ``readings`` topic and notes, for the probe unit's records,
    the record timestamp (when the bridge handed it to its producer)."""

    offset_reset = "latest"
    _probe_key = PROBE_UNIT.encode()

    def __init__(self, kafka: KafkaSettings, topic: str, log: ProbeLog) -> None:
        super().__init__("readings-reader", kafka, topic, log)

    def partitions(self, partitions: range) -> Iterable[int]:
        # The bridge keys records by unit and its producer's default partitioner puts a
        # key on one partition: reading only that one spares this process decoding
        # every reading of the run (~0.17 cores at 100,000 readings/s).
        every = list(partitions)
        return [DefaultPartitioner()(self._probe_key, every, every)]

    def note(self, records: list[Any], now: float) -> None:
        for r in records:
            if r.key != self._probe_key:
                continue  # only the probe unit's records are decoded
            b = decode_batch(r.value or b"")
            ids = b.sensor_ids[b.sensor_code]
            for sensor, ts in zip(ids, b.ts_ns // 1_000_000, strict=True):
                self.log.see(self.log.sent_to_kafka, (str(sensor), int(ts)), r.timestamp / 1000)


class SseReader(_Thread):
    """Reads the alerting live stream with a bearer token; notes probe alarm activations."""

    def __init__(self, api: str, token: str, log: ProbeLog) -> None:
        super().__init__("sse-reader")
        self.api, self.token, self.log = api, token, log
        self.ready = threading.Event()
        self.last_id: str | None = None

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._read()
            except httpx.HTTPError:
                time.sleep(0.2)  # reconnect and resume after the last id
            except BaseException as exc:
                self.error = exc
                return

    def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        with httpx.stream("GET", self.api + "/stream", headers=headers, timeout=30) as resp:
            resp.raise_for_status()
            self.ready.set()
            kind = ""
            for line in resp.iter_lines():
                if self.stopping.is_set():
                    return
                if line.startswith("id: "):
                    self.last_id = line[4:]
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "alarm":
                    now = time.time()
                    row = json.loads(line[6:])
                    sensor = row.get("sensor_id") or ""
                    if row.get("active") and sensor.startswith("PROBE-") and row["activated_at"]:
                        self.log.see(self.log.alarm, (sensor, _ms(row["activated_at"])), now)


def commit_timestamps_on(database: DatabaseSettings) -> bool:
    """Whether PostgreSQL records commit times (``track_commit_timestamp``)."""
    with psycopg.connect(database.conninfo(), autocommit=True) as conn:
        row = conn.execute("SHOW track_commit_timestamp").fetchone()
        return bool(row and row[0] == "on")


def _probe_rows_sql(exact: bool) -> str:
    # xmin of the physical rows: the readings view has none (migration 0040)
    when = "extract(epoch FROM pg_xact_commit_timestamp(r.xmin))" if exact else "NULL"
    return (
        "SELECT k.sensor_id, (extract(epoch FROM r.time) * 1000)::bigint, "
        f"{when}::float8, extract(epoch FROM r.ingest_time)::float8"
        " FROM readings_raw r JOIN sensor_keys k USING (sensor_key)"
        " WHERE k.unit_id = %s AND r.time >= %s"
    )


# The change-log row of each probe activation's alarm (the first one: later changes of
# the same occurrence, e.g. its clear, carry the same activated_at) and its commit time.
_ALARM_COMMITS_SQL = (
    "SELECT payload->>'sensor_id', payload->>'activated_at',"
    " min(extract(epoch FROM pg_xact_commit_timestamp(xmin)))::float8"
    " FROM change_log WHERE kind = 'alarm' AND payload->>'sensor_id' LIKE 'PROBE-%%'"
    " AND (payload->>'active')::boolean GROUP BY 1, 2"
)


def read_commit_times(database: DatabaseSettings, log: ProbeLog, since: float) -> None:
    """(a) exactly: each probe row's commit time, from the transaction that wrote it."""
    with psycopg.connect(database.conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            _probe_rows_sql(exact=True), (PROBE_UNIT, datetime.fromtimestamp(since).astimezone())
        ).fetchall()
    for sensor, ts, committed, ingested in rows:
        if committed is not None:
            log.see(log.db, (sensor, int(ts)), float(committed))
        log.see(log.ingested, (sensor, int(ts)), float(ingested))


def read_alarm_commits(database: DatabaseSettings, log: ProbeLog) -> None:
    """Commit time of each probe activation's alarm change (needs commit timestamps)."""
    with psycopg.connect(database.conninfo(), autocommit=True) as conn:
        alarms = conn.execute(_ALARM_COMMITS_SQL).fetchall()
    for sensor, activated_at, committed in alarms:
        if committed is not None and activated_at:
            log.see(log.alarm_committed, (sensor, _ms(activated_at)), float(committed))


class DbPoller(_Thread):
    """(a) without commit timestamps: polls the probe rows every ``poll_s``."""

    def __init__(self, database: DatabaseSettings, log: ProbeLog, poll_s: float = 0.02) -> None:
        super().__init__("db-poller")
        self.database, self.log, self.poll_s = database, log, poll_s

    def run(self) -> None:
        try:
            with psycopg.connect(self.database.conninfo(), autocommit=True) as conn:
                query = _probe_rows_sql(exact=False)
                while not self.stopping.is_set():
                    oldest = self.log.oldest_pending_ms()
                    if oldest is not None:
                        since = datetime.fromtimestamp(oldest / 1000).astimezone()
                        rows = conn.execute(query, (PROBE_UNIT, since)).fetchall()
                        now = time.time()
                        for sensor, ts, _, _ in rows:
                            self.log.see(self.log.db, (sensor, int(ts)), now)
                    time.sleep(self.poll_s)
        except BaseException as exc:
            self.error = exc


def stop_all(threads: Iterable[_Thread]) -> None:
    for t in threads:
        t.stop()
    for t in threads:
        t.join(10)


def first_error(threads: Iterable[_Thread]) -> BaseException | None:
    return next((t.error for t in threads if t.error is not None), None)
