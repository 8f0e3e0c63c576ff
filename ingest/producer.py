"""The bridge's Kafka producer, replaced after a failed produce.

An idempotent producer numbers its batches per partition. When batches expire while
Kafka is down, the producer's numbering runs ahead of what the broker stored, and every
later batch fails with ``OutOfOrderSequenceNumber`` forever. The bridge re-sends
unacknowledged records itself, so the cure is simple: after a failed produce, drop the
producer and start a fresh one (new producer id, sequences from zero). Re-sent records
may then reach Kafka twice; the readings table's unique key absorbs that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from common import kafka as kafka_clients
from common.settings import KafkaSettings

log = logging.getLogger(__name__)


class ProducerSlot:
    """Hands out the current producer (starting one if needed) with its generation."""

    def __init__(self, kafka: KafkaSettings, **overrides: Any) -> None:
        self._kafka = kafka
        self._overrides = overrides
        self._producer: AIOKafkaProducer | None = None
        self._generation = 0
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def current(self) -> AIOKafkaProducer | None:
        """The running producer, if any."""
        return self._producer

    async def get(self) -> tuple[AIOKafkaProducer, int]:
        """The running producer and its generation; raises KafkaError if none can start."""
        async with self._lock:
            if self._producer is None:
                producer = kafka_clients.make_producer(self._kafka, **self._overrides)
                try:
                    await producer.start()
                except (KafkaError, OSError) as exc:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise KafkaConnectionError(f"cannot start a Kafka producer: {exc}") from exc
                self._producer = producer
                self._generation += 1
            return self._producer, self._generation

    async def discard(self, generation: int) -> None:
        """Drop the producer of ``generation`` (if still current); close it in the background."""
        async with self._lock:
            if self._producer is None or generation != self._generation:
                return
            old, self._producer = self._producer, None
        log.warning("replacing the Kafka producer after a failed produce")
        task = asyncio.create_task(self._close(old), name="close-old-producer")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, producer: AIOKafkaProducer) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 5)

    async def close(self) -> None:
        """Stop the current producer and wait for old ones to close."""
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await self._close(producer)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
