"""Kafka clients configured from settings: idempotent producers, manual-commit consumers."""

from __future__ import annotations

import contextlib
import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import IllegalStateError, TopicAlreadyExistsError
from prometheus_client import Gauge

from common.settings import KafkaSettings


def connection_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Bootstrap, TLS and SASL options shared by producers, consumers and admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        )
        if kafka.ssl_certfile:
            context.load_cert_chain(
                str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None
            )
        options["ssl_context"] = context
    if kafka.sasl_mechanism:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return options


def make_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all): a retried send never duplicates a record."""
    options = connection_options(kafka) | {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 1024 * 1024,
        "compression_type": None,
    }
    return AIOKafkaProducer(**(options | overrides))


def make_consumer(
    kafka: KafkaSettings, group_id: str, *topics: str, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer that never auto-commits: offsets move only after data is durable."""
    options = connection_options(kafka) | {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
    }
    return AIOKafkaConsumer(*topics, **(options | overrides))


async def ensure_topics(kafka: KafkaSettings, *names: str) -> None:
    """Create topics with the configured partition count if they do not exist yet."""
    admin = AIOKafkaAdminClient(**connection_options(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, kafka.partitions, kafka.replication_factor)
            for name in names
            if name not in existing
        ]
        if missing:
            # another process may create it between our list and our create
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def consumer_lag(consumer: AIOKafkaConsumer) -> dict[tuple[str, int], int]:
    """Per assigned (topic, partition): the offsets between its end and the consumer's position.

    The end is the high watermark the last fetch reported, so no extra broker round trip
    is made; partitions not fetched yet (no watermark) or revoked meanwhile are left out.
    Call it right after a poll: the position is then the next record to be consumed.
    """
    lag = {}
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None:
            continue
        try:
            position = await consumer.position(tp)
        except IllegalStateError:  # revoked by a rebalance since assignment() was read
            continue
        lag[(tp.topic, tp.partition)] = max(end - position, 0)
    return lag


async def record_lag(consumer: AIOKafkaConsumer, gauge: Gauge) -> None:
    """Set a (topic, partition)-labelled gauge to :func:`consumer_lag` after a poll.

    Partitions no longer assigned disappear from the gauge.
    """
    lag = await consumer_lag(consumer)
    gauge.clear()
    for (topic, partition), offsets in lag.items():
        gauge.labels(topic, str(partition)).set(offsets)
