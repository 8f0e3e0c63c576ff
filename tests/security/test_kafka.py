"""Kafka over SASL_SSL (SCRAM-SHA-512, TLS with a test CA) against a really secured broker.

The broker is private (see kafka_broker.py). The full pipeline over it, with every
secret searched for in the logs, is in test_secrets.py; here: the shared client
factories move data, and a wrong password or an untrusted certificate stops a service
with one clear line instead of a hang, a retry loop or a stack trace.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from common import kafka as kafka_clients
from common.settings import KafkaSettings
from tests.fixtures.processes import Service, ServiceFactory, wait_until
from tests.security.broker import make_ca
from tests.security.kafka_broker import KAFKA_PASSWORD, KAFKA_USER, SecuredKafka

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "not-the-pw-Jd83Kq"


async def _round_trip(kafka: KafkaSettings, topic: str) -> list[bytes]:
    await kafka_clients.ensure_topics(kafka, topic)
    producer = kafka_clients.make_producer(kafka)
    await kafka_clients.start_client(producer, kafka)
    try:
        for i in range(3):
            await producer.send_and_wait(topic, f"m{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    consumer = kafka_clients.make_consumer(kafka, f"g-{topic}", topic)
    await kafka_clients.start_client(consumer, kafka)
    try:
        got: list[bytes] = []
        while len(got) < 3:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 20)
            got += [r.value for rs in batch.values() for r in rs]
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


def test_common_clients_round_trip_over_sasl_ssl(secured_kafka: SecuredKafka) -> None:
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    assert asyncio.run(_round_trip(secured_kafka.settings(), topic)) == [b"m0", b"m1", b"m2"]


def _refused(service: Service) -> str:
    """The service's log after it exited by itself with the configuration-error code."""
    try:
        code = service.proc.wait(60)
    except Exception:
        service.kill()
        raise AssertionError(f"{service.name} kept running:\n{service.log()}") from None
    log = service.log()
    assert code == 2, log
    assert "Traceback" not in log, log
    return log


def test_wrong_password_stops_each_service_with_one_clear_line(
    secured_kafka: SecuredKafka, service_factory: ServiceFactory
) -> None:
    env = secured_kafka.env(sasl_password=WRONG_PASSWORD)
    services = [service_factory(name, env=env) for name in ("ingest", "detectors", "alerting")]
    for service in services:
        log = _refused(service)
        errors = [line for line in log.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, log
        assert f"127.0.0.1:{secured_kafka.sasl_port}" in errors[0]
        assert f"SCRAM-SHA-512 as '{KAFKA_USER}'" in errors[0]
        assert "authentication failed" in errors[0]
        assert "kafka.sasl_password" in errors[0]
        assert WRONG_PASSWORD not in log
        assert KAFKA_PASSWORD not in log


def test_untrusted_broker_certificate_is_a_clear_tls_error(
    secured_kafka: SecuredKafka, service_factory: ServiceFactory, tmp_path: Path
) -> None:
    other_ca, _cert, _key = make_ca(tmp_path)  # a CA that did not sign the broker's cert
    no_ca = service_factory("ingest", env=secured_kafka.env(ssl_cafile=None))
    wrong_ca = service_factory("ingest", env=secured_kafka.env(ssl_cafile=str(other_ca)))
    log = _refused(no_ca)
    assert "TLS: the broker's certificate is not trusted by the system CAs" in log, log
    assert "set kafka.ssl_cafile" in log
    log = _refused(wrong_ca)
    assert f"not trusted by kafka.ssl_cafile {other_ca}" in log, log
    assert KAFKA_PASSWORD not in log


def test_plaintext_client_cannot_use_the_secured_listener(
    secured_kafka: SecuredKafka, service_factory: ServiceFactory
) -> None:
    env = secured_kafka.env(
        security_protocol="PLAINTEXT", sasl_mechanism=None, sasl_username=None, sasl_password=None
    )
    # The broker just closes a plaintext connection, which looks like a broker not up
    # yet: the bridge waits (services started before Kafka do), says why, gets nowhere.
    bridge = service_factory("ingest", env=env)
    wait_until(lambda: "waits for Kafka" in bridge.log(), 60, "the bridge to wait for Kafka")
    log = bridge.log()
    assert f"Kafka 127.0.0.1:{secured_kafka.sasl_port} (PLAINTEXT): cannot connect" in log, log
    assert "subscription confirmed" not in log, log
    assert bridge.stop() == 0
