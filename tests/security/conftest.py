"""A private, secured Mosquitto shared by the security tests of this package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.broker import PrivateBroker, start_private_broker
from tests.security.kafka_broker import SecuredKafka


@pytest.fixture(scope="package")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """Passwords, per-site ACLs and TLS with a CA made for this run (see broker.py)."""
    started = start_private_broker(tmp_path_factory.mktemp("mqtt-sec"))
    yield started
    started.down()


@pytest.fixture(scope="package")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    """A private Kafka with a SASL_SSL (SCRAM-SHA-512) listener and a test CA."""
    kafka = SecuredKafka(tmp_path_factory.mktemp("kafka-sec"))
    try:
        kafka.up()
    except BaseException:
        kafka.down()
        raise
    yield kafka
    kafka.down()
