"""A detector worker: Kafka ``readings`` -> detectors -> PostgreSQL + Kafka ``conditions``.

Exactly-once into the database: each poll's readings and condition transitions are
written in one transaction (both idempotent: readings ON CONFLICT DO NOTHING, transitions
keyed by deterministic event ids). Every ``snapshot_interval_s`` (and on partition revoke
and shutdown) the detector state of the changed units is checkpointed together with the
offsets it corresponds to, in the same transaction as that poll. On start and on every
partition assignment the worker restores the checkpoint and seeks to its offsets, so a
crash at any point neither loses nor duplicates a row: the polls after the checkpoint are
replayed and find their rows already there.

The alarm path does not wait for the database: a poll's condition events go to Kafka
as soon as they are detected, and its transaction is written while the next poll is
detected (one write in flight, writes in poll order). A crash before the write commits
replays the poll from the checkpoint and publishes the same events again: their ids are
deterministic, so alerting applies each once. Events Kafka did not take are stored
unpublished (an outbox) and sent, in order, once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import psycopg
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.structs import ConsumerRecord

from common import kafka as kafka_clients
from common import store
from common.conditions import ConditionEvent
from common.migrate import migrate
from common.readings import BatchFormatError, decode_batch
from common.registry import Registry
from detectors import metrics
from detectors.base import Detector, Transitions
from detectors.config import build_suite
from detectors.events import condition_events, mspc_events
from detectors.multivariate import PcaModel, UnitMspc
from detectors.redundancy import GroupDetector, groups_from_registry
from detectors.rollup_folder import RollupFolder
from detectors.settings import DetectorSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
STATE_NAME = "suite"  # detector_state.detector of the whole suite's per-unit snapshot
MODEL_KIND = "pca"  # detector_models.kind of the multivariate models


@dataclass(frozen=True)
class _Checkpoint:
    """Resume offsets and the state of the units changed since the last checkpoint,
    taken together (the state is what the detectors hold after exactly these offsets)."""

    positions: dict[TopicPartition, int]
    state: dict[str, dict[str, Any]]
    units: frozenset[int]


@dataclass(frozen=True)
class _Poll:
    """One poll, detected, waiting for its database write."""

    cols: dict[str, np.ndarray]  # sensor (registry index), ts, ingest, value, quality
    events: list[ConditionEvent]
    published: bool  # Kafka has the events (else they wait in the outbox)
    checkpoint: _Checkpoint | None
    started: float  # perf_counter when detection began


class Worker:
    """One member of the detector consumer group."""

    def __init__(self, settings: DetectorSettings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.suite = build_suite(registry)
        self.mspc = UnitMspc({}, len(registry), {})
        self.groups = GroupDetector(groups_from_registry(registry), len(registry))
        self.group_unit = [str(registry.unit_ids[int(g.members[0])]) for g in self.groups.groups]
        self.index_of = {str(sid): i for i, sid in enumerate(registry.sensor_ids)}
        units = sorted(registry.units)
        self.unit_names = np.array(units, dtype=object)
        self.unit_code = np.searchsorted(units, registry.unit_ids.astype(str))
        self.unit_sensors = {u: np.flatnonzero(registry.unit_ids == u) for u in units}
        self._conn: psycopg.Connection[Any] | None = None
        # All database work runs on this one thread: the rebalance listener and the
        # poll loop must never use the connection at the same time.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detectors-db")
        # Detection runs on its own thread, so the next poll is detected while the
        # previous one is written. Detector state is changed only while ``_lock`` is
        # held (detection, ticks, restore, checkpoints), so no two of them overlap.
        self._detect = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detectors-detect")
        self._lock = asyncio.Lock()
        # Polls detected but not yet written, in order, and the task writing them: each
        # of its transactions takes every poll queued by then (several small polls make
        # one larger write), so a slow write holds up neither detection nor alarms.
        self._queue: list[_Poll] = []
        self._queued_readings = 0
        self._writer: asyncio.Task[None] | None = None
        self._taken = asyncio.Event()  # set each time the writer takes the queue
        # A write failed: the detectors (and resume offsets) are ahead of the database
        # until the next restore, so no checkpoint may be written meanwhile.
        self._ahead = False
        # Bumped after every restore and seek: a poll fetched before it is dropped (it is
        # fetched again from the restored offsets).
        self._generation = 0
        self._batches = 0
        self._db_failures = 0  # consecutive failed attempts to write (for the backoff)
        self._outbox_pending = False  # a publish failed: the outbox holds unsent events
        self._outbox_retry_at = 0.0
        self._running = False
        # Arrival minus source time of the newest readings: the clock-driven stale check
        # runs on the sources' clock, so a replay or an accelerated simulation (whose
        # timestamps lie in the past) is not taken for silence.
        self._source_lag_ns = 0
        self.owned = np.zeros(len(registry), bool)  # sensors of units on our partitions
        # Checkpointing: next offsets detected per partition, units changed since the last
        # checkpoint, and when the next one is due.
        self._positions: dict[TopicPartition, int] = {}
        self._dirty: set[int] = set()
        self._next_checkpoint = 0.0
        self._checkpointed: dict[TopicPartition, int] = {}  # to commit to Kafka (advisory)
        # Stored events Kafka has since acknowledged (outbox, ticks), marked published in
        # the next transaction we run anyway (a commit of their own cost one fsync each).
        # Lost in a crash, they are only published again: event ids make that harmless.
        self._to_mark: list[str] = []
        self._folder = (
            RollupFolder(settings.database.conninfo()) if settings.detectors.defer_rollups else None
        )

    def healthy(self) -> bool:
        """Consuming and connected to the database."""
        return self._running and self._conn is not None and not self._conn.closed

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished first."""
        kafka, opts = self.settings.kafka, self.settings.detectors
        await self.in_db_thread(migrate, self.settings.database)
        topics = (kafka.readings_topic, kafka.conditions_topic)
        if not await kafka_clients.wait_for_topics(kafka, stop, "detector worker", *topics):
            return
        self._conn = await self.in_db_thread(psycopg.connect, self.settings.database.conninfo())
        producer = kafka_clients.make_producer(kafka)
        consumer = kafka_clients.make_consumer(
            kafka, opts.group_id, group_instance_id=opts.group_instance_id
        )
        await kafka_clients.start_client(producer, kafka)
        consumer.subscribe([kafka.readings_topic], listener=_Listener(self, consumer))
        await kafka_clients.start_client(consumer, kafka)
        self._running = True
        next_tick = time.monotonic() + opts.tick_interval_s
        try:
            await self._publish_outbox(producer)
            while not stop.is_set():
                polled, generation = await self._poll(consumer)
                await kafka_clients.record_lag(consumer, metrics.KAFKA_LAG)
                try:
                    async with self._lock:
                        if polled and generation == self._generation:
                            await self._handle(producer, polled)
                        if time.monotonic() >= next_tick:
                            next_tick = time.monotonic() + opts.tick_interval_s
                            await self._tick(producer)
                            # once per tick, not per batch: partial aggregates of the same
                            # buckets merge; beside the poll loop, not in its way
                            if self._folder is not None:
                                self._folder.kick()
                        if self._outbox_pending and time.monotonic() >= self._outbox_retry_at:
                            await self._publish_outbox(producer)
                        if self._dirty and time.monotonic() >= self._next_checkpoint:
                            await self._settle()  # a quiet topic: still every N s
                            await self.in_db_thread(self.checkpoint)
                    if self._checkpointed:
                        # Kafka's committed offsets only ever echo the checkpoint, so a
                        # member that falls back on them never skips unreplayed data.
                        await commit_advisory(consumer, self._checkpointed)
                        self._checkpointed = {}
                except store.UNAVAILABLE as exc:
                    await self._recover(consumer, exc, stop)
        finally:
            self._running = False
            async with self._lock:
                await self._checkpoint_now()
            await consumer.stop()
            await producer.stop()
            if self._folder is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._folder.close)
            await self.in_db_thread(self._conn.close)
            self._db.shutdown()
            self._detect.shutdown()
            log.info("detector worker stopped")

    async def _poll(
        self, consumer: Any
    ) -> tuple[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], int]:
        """The next records and the generation (see ``resume``) they belong to."""
        opts = self.settings.detectors
        polled = await consumer.getmany(
            timeout_ms=opts.poll_timeout_ms, max_records=opts.max_records
        )
        return polled, self._generation

    async def _handle(
        self, producer: Any, polled: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        """Detect one poll, send its events, and queue its write."""
        cols, events, checkpoint, started = await self.in_detect_thread(self._prepare, polled)
        published = await self._deliver(producer, events)
        self._queue.append(_Poll(cols, events, published, checkpoint, started))
        self._queued_readings += len(cols["ts"])
        if self._writer is not None and self._writer.done():
            await self._settle()  # it finished (or failed: raised here)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queue(), name="detectors-writer")
        if self._queued_readings > self.settings.detectors.max_queued_readings:
            await self._backpressure()

    async def _backpressure(self) -> None:
        """The database is behind: stand still until the writer takes the queue.

        That is when its write in flight has committed. Waiting for the queue to be
        written as well (as before 30 Nov) stood detection, and so every alarm, still
        for two transactions instead of one; memory stays bounded the same way (one
        write in flight, at most ``max_queued_readings`` plus a poll queued).
        """
        writer = self._writer
        if writer is None:
            return
        self._taken.clear()
        taken = asyncio.ensure_future(self._taken.wait())
        try:
            with metrics.BACKPRESSURE_SECONDS.time():
                await asyncio.wait({writer, taken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            taken.cancel()
        if writer.done():
            await self._settle()  # it finished, or failed: raised here

    async def _write_queue(self) -> None:
        opts = self.settings.detectors
        while self._queue:
            # Gather small polls for a moment: one transaction per poll at low rates cost
            # more CPU (worker and PostgreSQL) than the readings themselves.
            wait = self._queue[0].started + opts.write_linger_ms / 1000 - time.perf_counter()
            if wait > 0 and self._queued_readings < opts.write_batch_readings:
                await asyncio.sleep(wait)
            polls, self._queue, self._queued_readings = self._queue, [], 0
            self._taken.set()
            await self.in_db_thread(self._write, polls)

    async def _settle(self) -> None:
        """Wait until every detected poll is written; a failed write (e.g. the database
        went away) is raised here, and the polls queued behind it are dropped (the
        replay from the checkpoint detects them again)."""
        writer = self._writer
        if writer is None:
            return
        try:
            await writer
        except BaseException:
            self._queue, self._queued_readings = [], 0
            self._ahead = True
            raise
        finally:
            self._writer = None

    async def _checkpoint_now(self) -> None:
        """Checkpoint once the queued polls are written (revoke, shutdown; the caller holds
        the lock). When a write failed the state is ahead of the database: no checkpoint,
        the replay from the last one covers it."""
        try:
            await self._settle()
            await self.in_db_thread(self.checkpoint)
        except psycopg.Error as exc:
            log.warning("no checkpoint (%s)", exc)

    async def _recover(self, consumer: Any, exc: Exception, stop: asyncio.Event) -> None:
        """The database went away mid-batch: reconnect, reload state, re-read from its offsets.

        The failed transaction was rolled back, so the state in memory is ahead of the
        database; reloading it and seeking back keeps exactly-once.
        """
        log.error("database error (%s); reconnecting", exc)
        metrics.DB_ERRORS.inc()
        async with self._lock:
            with contextlib.suppress(Exception):
                await self._settle()  # the write it failed in, or the queue behind it
        # Back off when the database keeps refusing (read-only, disk full): reconnecting
        # works at once then, and each retry would re-read the same records for nothing.
        self._db_failures += 1
        if self._db_failures > 1:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(0.25 * 2**self._db_failures, 5.0))
        delay = 0.5
        while not stop.is_set():
            try:
                await self.in_db_thread(self._reconnect)
                async with self._lock:
                    await self.resume(consumer, consumer.assignment())
                log.info("database back; resumed from stored offsets")
                return
            except store.UNAVAILABLE as again:
                log.warning("database still unavailable (%s); retry in %.1f s", again, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def resume(
        self, consumer: Any, partitions: set[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Restore the checkpoint of ``partitions`` and seek to its offsets (the caller
        holds the lock); polls fetched before are dropped."""
        positions = await self.in_db_thread(self.restore, partitions)
        seek(consumer, partitions, positions)
        self._generation += 1
        return positions

    def _reconnect(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = psycopg.connect(self.settings.database.conninfo())

    def assign(self, partitions: set[TopicPartition], n_partitions: int) -> None:
        """Remember which units this worker owns (their Kafka key hashes to our partitions)."""
        mine = {tp.partition for tp in partitions}
        owned = np.zeros(len(self.registry), bool)
        for unit, sensors in self.unit_sensors.items():
            if n_partitions and (murmur2(unit.encode()) & 0x7FFFFFFF) % n_partitions in mine:
                owned[sensors] = True
        self.owned = owned

    async def _tick(self, producer: Any) -> None:
        """Clock-driven conditions (stale sensors) of the units we own: stored, then sent.

        Unlike a poll's events these are not replayed after a crash (they come from the
        clock), so they are made durable before they are published."""
        events = await self.in_detect_thread(self._tick_detect)
        if events or self._to_mark:  # a quiet topic: no batch transaction to carry marks
            await self.in_db_thread(self._insert_events, events)
        await self._publish_stored(producer, events)

    def _tick_detect(self) -> list[ConditionEvent]:
        now = time.time_ns() - self._source_lag_ns  # "now" on the sources' clock
        found = [(d, _only(tr, self.owned)) for d, tr in self.suite.tick(now)]
        events = self._events(found)
        if events:  # their state goes out with the checkpoint
            units = np.unique(self.unit_code[np.concatenate([tr.sensor for _, tr in found])])
            self._dirty.update(int(u) for u in units)
        return events

    def _insert_events(self, events: list[ConditionEvent]) -> None:
        assert self._conn is not None
        with self._transaction():
            store.insert_anomalies(self._conn, events)
        self._count(0, None, 0, events)

    async def in_db_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking database work on the worker's database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def in_detect_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run detection on the worker's detection thread."""
        return await asyncio.get_running_loop().run_in_executor(self._detect, fn, *args)

    def restore(self, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
        """Reload detector state and return the stored next offset per assigned partition."""
        assert self._conn is not None
        with self._conn.transaction():
            snapshots = store.load_state(self._conn, STATE_NAME)
            stored = store.load_offsets(
                self._conn, self.settings.detectors.group_id, self.settings.kafka.readings_topic
            )
            models = store.load_models(self._conn, MODEL_KIND)
        self.suite.reset()
        for state in snapshots.values():
            self.suite.restore(state, self.index_of)
        self.mspc = UnitMspc(
            self.index_of,
            len(self.registry),
            {
                u: (version, PcaModel.from_dict(m))
                for u, (version, m) in models.items()
                if u in self.registry.units
            },
        )
        self.groups = GroupDetector(self.groups.groups, len(self.registry))
        keys = {f"{g.condition}:{g.key}": gi for gi, g in enumerate(self.groups.groups)}
        for unit, state in snapshots.items():
            if state.get("mspc"):
                self.mspc.restore(unit, state["mspc"])
            for key, snap in state.get("groups", {}).items():
                if key in keys:
                    self.groups.restore(keys[key], snap)
        positions = {tp: stored[tp.partition] for tp in partitions if tp.partition in stored}
        self._positions = dict(positions)
        self._dirty.clear()
        self._ahead = False
        self._next_checkpoint = time.monotonic() + self.settings.detectors.snapshot_interval_s
        return positions

    def checkpoint(self) -> None:
        """Write the state of changed units and the resume offsets now (revoke, shutdown;
        nothing may be detected or written meanwhile)."""
        assert self._conn is not None
        if self._conn.closed or self._ahead:
            return
        taken = self._take_checkpoint()
        with self._transaction():
            self._write_checkpoint(taken)
        self._checkpoint_taken(taken)
        self._checkpointed = dict(taken.positions)

    def _take_checkpoint(self) -> _Checkpoint:
        units = np.array(sorted(self._dirty), np.int64)
        return _Checkpoint(dict(self._positions), self._snapshots(units), frozenset(self._dirty))

    def _write_checkpoint(self, taken: _Checkpoint) -> None:
        assert self._conn is not None
        store.save_offsets(
            self._conn,
            self.settings.detectors.group_id,
            {(tp.topic, tp.partition): off for tp, off in taken.positions.items()},
        )
        store.save_state(self._conn, STATE_NAME, taken.state)

    def _checkpoint_taken(self, taken: _Checkpoint) -> None:
        """The units in ``taken`` need no checkpoint until they change again; the next
        one is due in ``snapshot_interval_s``."""
        self._dirty -= taken.units
        self._next_checkpoint = time.monotonic() + self.settings.detectors.snapshot_interval_s

    def _prepare(
        self, polled: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> tuple[dict[str, np.ndarray], list[ConditionEvent], _Checkpoint | None, float]:
        """Detect on one poll: its columns, events, checkpoint when one is due, and when it
        began (runs on the detection thread)."""
        started = time.perf_counter()
        cols = self._columns([r for records in polled.values() for r in records])
        if len(cols["ts"]):
            newest = int(np.argmax(cols["ts"]))
            self._source_lag_ns = int(cols["ingest"][newest] - cols["ts"][newest])
        events = self.detect(cols)
        self._dirty.update(int(u) for u in np.unique(self.unit_code[cols["sensor"]]))
        self._positions.update({tp: records[-1].offset + 1 for tp, records in polled.items()})
        taken = None
        if time.monotonic() >= self._next_checkpoint:
            # The state right after this poll's detection, before the next one's: written
            # with this poll (or a later one), it matches these offsets.
            taken = self._take_checkpoint()
            self._checkpoint_taken(taken)
        metrics.DETECT_SECONDS.observe(time.perf_counter() - started)
        metrics.POLL_READINGS.observe(len(cols["ts"]))
        return cols, events, taken, started

    def _write(self, polls: list[_Poll]) -> None:
        """Make queued polls durable in one transaction (runs on the database thread)."""
        cols = {k: np.concatenate([p.cols[k] for p in polls]) for k in polls[0].cols}
        sensors, codes = np.unique(cols["sensor"], return_inverse=True)
        units, unit_codes = np.unique(self.unit_code[cols["sensor"]], return_inverse=True)
        rows = {
            "sensor_ids": [str(s) for s in self.registry.sensor_ids[sensors]],
            "sensor_code": codes,
            "unit_ids": [str(u) for u in self.unit_names[units]],
            "unit_code": unit_codes,
            "ts_ns": cols["ts"],
            "ingest_ns": cols["ingest"],
            "value": cols["value"],
            "quality": cols["quality"],
        }
        with metrics.DB_WRITE_SECONDS.time():
            try:
                stored = self._commit(rows, polls, "raise")
            except psycopg.errors.UniqueViolation:
                # Some rows are stored already: a replay after a restart or a rebalance.
                stored = self._commit(rows, polls, "staged")
                log.info(
                    "replayed poll: %d of %d readings were stored already",
                    len(cols["ts"]) - stored,
                    len(cols["ts"]),
                )
        taken = [p.checkpoint for p in polls if p.checkpoint is not None]
        if taken:
            self._checkpointed = dict(taken[-1].positions)
        self._db_failures = 0
        newest_ns = int(cols["ts"].max()) if len(cols["ts"]) else None
        self._count(len(cols["ts"]), newest_ns, stored, [e for p in polls for e in p.events])
        for p in polls:
            metrics.BATCH_SECONDS.observe(time.perf_counter() - p.started)

    def _commit(
        self, rows: dict[str, Any], polls: list[_Poll], on_conflict: Literal["raise", "staged"]
    ) -> int:
        """Polls' readings, condition events, publish marks and checkpoints (in poll order:
        a later one carries only the units changed since the earlier) in one transaction;
        returns the rows stored."""
        assert self._conn is not None
        with self._transaction():
            stored = store.write_readings(
                self._conn,
                **rows,
                defer_rollups=self.settings.detectors.defer_rollups,
                on_conflict=on_conflict,
            )
            for published in (True, False):
                events = [e for p in polls if p.published is published for e in p.events]
                store.insert_anomalies(self._conn, events, published=published)
            for p in polls:
                if p.checkpoint is not None:
                    self._write_checkpoint(p.checkpoint)
            self._maybe_crash()
        return stored

    def detect(self, cols: dict[str, np.ndarray]) -> list[ConditionEvent]:
        """Run the suite and the unit models on one poll's columns (no I/O)."""
        # The multivariate detector shares the suite's clock: sort (and flag late readings)
        # against it before the suite advances it.
        b = self.suite.sort(cols["sensor"], cols["ts"], cols["value"], cols["quality"])
        found = self.suite.process_batch(b)
        events = self._events(found)
        if self.mspc.units:
            found_mspc = self.mspc.process(b.s, b.t, b.v, b.usable)
            events += mspc_events(self.mspc, found_mspc, self.registry)
        if self.groups.groups:
            found_groups = self.groups.process(b.s, b.t, b.v, b.usable)
            events += self.groups.events(found_groups, self.registry)
        return sorted(events, key=lambda e: e.ts)

    def _columns(self, records: list[ConsumerRecord[bytes, bytes]]) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = defaultdict(list)
        for record in records:  # one iteration per Kafka record (a batch of readings)
            try:
                batch = decode_batch(record.value or b"")
            except BatchFormatError as exc:
                metrics.BAD_RECORDS.inc()
                log.error(
                    "skipping record %s/%d@%d: %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    exc,
                )
                continue
            lookup = np.array([self.index_of.get(str(s), -1) for s in batch.sensor_ids], np.int64)
            idx = lookup[batch.sensor_code] if len(lookup) else np.array([], np.int64)
            known = idx >= 0
            if not known.all():
                metrics.UNKNOWN_SENSORS.inc(int((~known).sum()))
            parts["sensor"].append(idx[known])
            parts["ts"].append(batch.ts_ns[known])
            parts["ingest"].append(batch.ingest_ns[known])
            parts["value"].append(batch.value[known])
            parts["quality"].append(batch.quality[known])
        dtypes = {
            "sensor": np.int64,
            "ts": np.int64,
            "ingest": np.int64,
            "value": np.float64,
            "quality": np.uint8,
        }
        return {
            k: np.concatenate(parts[k]) if parts[k] else np.array([], dt)
            for k, dt in dtypes.items()
        }

    def _snapshots(self, unit_codes: np.ndarray) -> dict[str, dict[str, Any]]:
        out = {}
        for code in unit_codes:  # one per unit in the poll
            unit = str(self.unit_names[code])
            out[unit] = self.suite.snapshot(self.unit_sensors[unit], self.registry.sensor_ids)
            mspc = self.mspc.snapshot(unit)
            if mspc is not None:
                out[unit]["mspc"] = mspc
            out[unit]["groups"] = {
                f"{g.condition}:{g.key}": self.groups.snapshot(gi)
                for gi, g in enumerate(self.groups.groups)
                if self.group_unit[gi] == unit
            }
        return out

    def _events(self, found: list[tuple[Detector, Transitions]]) -> list[ConditionEvent]:
        events = [e for det, tr in found for e in condition_events(det, tr, self.registry)]
        events.sort(key=lambda e: e.ts)
        return events

    def _maybe_crash(self) -> None:
        self._batches += 1
        limit = self.settings.detectors.fault_exit_before_commit
        if limit and self._batches >= limit:
            log.critical("fault injection: exiting before commit of batch %d", self._batches)
            os._exit(137)

    def _count(
        self, readings: int, newest_ns: int | None, stored: int, events: list[ConditionEvent]
    ) -> None:
        metrics.READINGS.inc(readings)
        metrics.STORED.inc(stored)
        for e in events:
            metrics.TRANSITIONS.labels(e.condition, e.state).inc()
        if newest_ns is not None:
            metrics.LAG_SECONDS.set(time.time() - newest_ns / 1e9)

    def _outbox(self) -> list[ConditionEvent]:
        assert self._conn is not None
        with self._transaction():  # marks first, or they would be sent twice
            return store.unpublished_anomalies(self._conn)

    async def _deliver(self, producer: Any, events: list[ConditionEvent]) -> bool:
        """Send events to Kafka, in order; False when they must wait in the outbox (Kafka
        cannot take them, or older events wait there: they go first, once it is back)."""
        if self._outbox_pending:
            return False
        if not events:
            return True
        topic = self.settings.kafka.conditions_topic
        try:
            futures = [await producer.send(topic, e.to_json(), key=e.unit.encode()) for e in events]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            log.warning("publishing condition events failed (%s); retrying from the outbox", exc)
            self._outbox_pending = True
            self._outbox_retry_at = time.monotonic() + 1.0
            return False
        for e in events:
            log.info("condition %s %s: %s", e.state, e.condition, e.explanation)
        return True

    async def _publish_stored(self, producer: Any, events: list[ConditionEvent]) -> None:
        """Publish events stored unpublished; they are marked in the next transaction."""
        if await self._deliver(producer, events):
            self._to_mark.extend(e.event_id for e in events)

    async def _publish_outbox(self, producer: Any) -> None:
        """Publish every event still in the outbox (ids are deterministic: a repeat is
        harmless)."""
        await self._settle()  # events queued unpublished are in the outbox once written
        self._outbox_pending = False
        await self._publish_stored(producer, await self.in_db_thread(self._outbox))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """A transaction of the worker's connection that also marks the events Kafka has
        acknowledged as published; they leave the list once it has committed (events
        acknowledged meanwhile stay behind them)."""
        assert self._conn is not None
        n = len(self._to_mark)
        with self._conn.transaction():
            store.mark_published(self._conn, self._to_mark[:n])
            yield
        del self._to_mark[:n]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Moves state with partitions: on assignment, restore from the database and seek."""

    def __init__(self, worker: Worker, consumer: Any) -> None:
        self.worker = worker
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Checkpoint, so the next owner resumes from our latest state."""
        async with self.worker._lock:
            await self.worker._checkpoint_now()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Seek to the offsets stored with the data; Kafka's own commits are advisory."""
        topic = self.worker.settings.kafka.readings_topic
        n_partitions = len(self.consumer.partitions_for_topic(topic) or ())
        async with self.worker._lock:
            with contextlib.suppress(Exception):  # a failed write: the restore covers it
                await self.worker._settle()
            self.worker.assign(assigned, n_partitions)
            positions = await self.worker.resume(self.consumer, assigned)
        log.info(
            "assigned %s; resumed from stored offsets %s",
            sorted(tp.partition for tp in assigned),
            {tp.partition: o for tp, o in positions.items()},
        )


async def commit_advisory(consumer: Any, offsets: dict[TopicPartition, int]) -> None:
    """Commit ``offsets`` to Kafka for the partitions we still own; a rebalance is no error.

    These commits are advisory (the offsets that count are stored with the data), so a
    partition revoked between checkpoint and commit, or a commit refused because the
    group is rebalancing, is skipped rather than allowed to stop the worker.
    """
    owned = consumer.assignment()
    mine = {tp: offset for tp, offset in offsets.items() if tp in owned}
    if not mine:
        return
    try:
        await consumer.commit(mine)
    except (IllegalStateError, CommitFailedError) as exc:
        log.info("advisory Kafka offset commit skipped during a rebalance (%s)", exc)


def seek(
    consumer: Any, assigned: set[TopicPartition], positions: dict[TopicPartition, int]
) -> None:
    """Go to the checkpointed offsets; a partition the database knows nothing of starts at
    offset 0 (an offset below the retained log resets to the earliest one)."""
    for tp in assigned:
        consumer.seek(tp, positions.get(tp, 0))


def _only(found: Transitions, sensors: np.ndarray) -> Transitions:
    keep = sensors[found.sensor]
    return Transitions(*(getattr(found, f)[keep] for f in Transitions.__dataclass_fields__))
