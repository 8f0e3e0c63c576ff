"""Kafka clients configured from settings: idempotent producers, manual-commit consumers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalStateError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
)
from prometheus_client import Gauge

from common.errors import ChemWatchError, ServiceUnavailable
from common.settings import KafkaSettings

PROBE_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)


class KafkaAccessError(ChemWatchError):
    """Kafka refused us (credentials, TLS trust, mechanism): retrying will not help."""


class KafkaUnavailable(ServiceUnavailable):
    """Kafka could not be reached; it may come back."""


class _Startable(Protocol):
    async def start(self) -> None: ...


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


def describe(kafka: KafkaSettings) -> str:
    """Where and how we connect, for messages: servers, protocol, mechanism, user (no secret)."""
    how: str = kafka.security_protocol
    if kafka.security_protocol.startswith("SASL_"):
        how += f", {kafka.sasl_mechanism or 'no sasl_mechanism'} as {kafka.sasl_username!r}"
    return f"Kafka {kafka.bootstrap_servers} ({how})"


async def start_client(client: _Startable, kafka: KafkaSettings) -> None:
    """``client.start()``; on failure raise one clear error naming the cause.

    aiokafka reports any failed bootstrap as "Unable to bootstrap" (the cause only in a
    log line), so on failure one probe connection finds out why: wrong credentials and
    untrusted certificates raise :class:`KafkaAccessError`, the rest
    :class:`KafkaUnavailable`. The password is never part of the message.
    """
    try:
        await client.start()
    except (KafkaError, OSError) as exc:
        close = getattr(client, "stop", None) or getattr(client, "close", None)
        if close is not None:  # no "Unclosed AIOKafka..." warnings on the way out
            with contextlib.suppress(Exception):
                await close()
        raise await diagnose(kafka, exc) from None


async def diagnose(kafka: KafkaSettings, failure: BaseException | None = None) -> ChemWatchError:
    """Connect once to the first bootstrap server and explain what goes wrong."""
    where = describe(kafka)
    first = kafka.bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    options = connection_options(kafka)
    try:
        conn = await asyncio.wait_for(
            create_conn(
                host or "localhost",
                int(port) if port.isdigit() else 9092,
                client_id="chemwatch-probe",
                request_timeout_ms=int(PROBE_TIMEOUT_S * 1000),
                ssl_context=options.get("ssl_context"),
                security_protocol=kafka.security_protocol,
                sasl_mechanism=kafka.sasl_mechanism or "PLAIN",
                sasl_plain_username=options.get("sasl_plain_username"),
                sasl_plain_password=options.get("sasl_plain_password"),
            ),
            PROBE_TIMEOUT_S,
        )
    except ssl.SSLCertVerificationError as exc:
        ca = f"kafka.ssl_cafile {kafka.ssl_cafile}" if kafka.ssl_cafile else "the system CAs"
        fix = "" if kafka.ssl_cafile else "; set kafka.ssl_cafile to the CA that signed it"
        return KafkaAccessError(
            f"{where}: TLS: the broker's certificate is not trusted by {ca} "
            f"({exc.verify_message}){fix}"
        )
    except ssl.SSLError as exc:
        return KafkaAccessError(
            f"{where}: TLS handshake failed ({exc.reason or exc}); is this a TLS listener?"
        )
    except SaslAuthenticationFailed as exc:
        return KafkaAccessError(
            f"{where}: authentication failed ({exc}); check kafka.sasl_username and "
            "kafka.sasl_password"
        )
    except UnsupportedSaslMechanismError as exc:
        return KafkaAccessError(f"{where}: {exc}; check kafka.sasl_mechanism")
    except TimeoutError:
        return KafkaUnavailable(
            f"{where}: no answer within {PROBE_TIMEOUT_S:.0f} s "
            "(wrong port, or a TLS listener spoken to without TLS?)"
        )
    except (KafkaError, OSError) as exc:
        return KafkaUnavailable(f"{where}: cannot connect ({exc})")
    conn.close()
    return KafkaUnavailable(f"{where}: {failure or 'cannot start a client'}")


async def wait_for_topics(kafka: KafkaSettings, stop: asyncio.Event, who: str, *names: str) -> bool:
    """:func:`ensure_topics`, waiting with backoff until Kafka answers; False if ``stop``
    is set first.

    A service started before its broker (a whole site powering up, a broker restarting)
    waits instead of exiting; what it should consume or forward waits at its source
    meanwhile. A refusal (:class:`KafkaAccessError`: credentials, TLS trust) is raised
    at once: waiting does not fix configuration.
    """
    delay = 1.0
    while not stop.is_set():
        try:
            await ensure_topics(kafka, *names)
        except KafkaUnavailable as exc:
            log.warning("%s waits for Kafka (%s); next try in %.0f s", who, exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 15.0)
            continue
        return True
    return False


async def ensure_topics(kafka: KafkaSettings, *names: str) -> None:
    """Create topics with the configured partition count if they do not exist yet.

    Usually the first contact with Kafka: a refusal is raised as a clear error (see
    :func:`start_client`).
    """
    admin = AIOKafkaAdminClient(**connection_options(kafka))
    await start_client(admin, kafka)
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
