"""consumer_lag on the real Kafka: the records between a partition's end and the position."""

from __future__ import annotations

import asyncio

import pytest

from common import kafka as kafka_clients
from common.settings import BaseProcessSettings
from tests.fixtures.services import Isolation


async def _lag_after_polls(
    stack: BaseProcessSettings, topic: str
) -> list[dict[tuple[str, int], int]]:
    kafka = stack.kafka
    await kafka_clients.ensure_topics(kafka, topic)
    producer = kafka_clients.make_producer(kafka)
    await producer.start()
    try:
        for i in range(7):
            await producer.send_and_wait(topic, str(i).encode(), partition=0)
    finally:
        await producer.stop()
    consumer = kafka_clients.make_consumer(kafka, f"{topic}-group", topic)
    await consumer.start()
    seen: list[dict[tuple[str, int], int]] = []
    try:
        consumed = 0
        for _ in range(50):
            polled = await consumer.getmany(timeout_ms=500, max_records=3)
            n = sum(len(r) for r in polled.values())
            if n:
                consumed += n
                seen.append(await kafka_clients.consumer_lag(consumer))
            if consumed >= 7:
                break
    finally:
        await consumer.stop()
    return seen


@pytest.mark.integration
def test_lag_counts_the_records_not_yet_consumed(
    stack: BaseProcessSettings, isolation: Isolation
) -> None:
    topic = f"{isolation.tag}.lag"
    seen = asyncio.run(_lag_after_polls(stack, topic))
    lags = [lag[(topic, 0)] for lag in seen]
    # 7 records read 3 at a time (fetches may return fewer): the lag falls to 0 and the
    # first poll leaves 7 minus what it returned
    assert lags[-1] == 0, lags
    assert lags[0] in (4, 5, 6), lags
    assert lags == sorted(lags, reverse=True), lags
    # the other (empty) partitions of the topic are assigned too and have no lag
    assert all(v == 0 for (_t, p), v in seen[0].items() if p != 0), seen[0]
