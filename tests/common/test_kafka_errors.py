"""Kafka start-up failures become one clear error; process entry points print it once."""

from __future__ import annotations

import asyncio

import pytest

from chemwatch.ports import free_port
from common import kafka as kafka_clients
from common.errors import ChemWatchError
from common.process import guarded
from common.settings import KafkaSettings


def test_describe_names_servers_protocol_mechanism_and_user_only() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="k1:9093,k2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="pw-Zx81",
    )
    text = kafka_clients.describe(kafka)
    assert text == "Kafka k1:9093,k2:9093 (SASL_SSL, SCRAM-SHA-512 as 'svc')"
    assert kafka_clients.describe(KafkaSettings()) == "Kafka 127.0.0.1:19092 (PLAINTEXT)"


def test_nothing_listening_is_kafka_unavailable_naming_the_server() -> None:
    kafka = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password="pw-Zx81",
    )
    admin_start = kafka_clients.ensure_topics(kafka, "t")
    with pytest.raises(kafka_clients.KafkaUnavailable) as caught:
        asyncio.run(admin_start)
    text = str(caught.value)
    assert text.startswith(f"Kafka {kafka.bootstrap_servers} (SASL_SSL, PLAIN as 'svc')")
    assert "cannot connect" in text
    assert "pw-Zx81" not in text
    assert caught.value.retriable


def test_guarded_prints_each_distinct_error_of_a_task_group_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def main() -> int:
        raise ExceptionGroup("tasks", [ChemWatchError("same"), ChemWatchError("same")])

    assert guarded(main) == 2
    assert capsys.readouterr().err == "error: same\n"


def test_guarded_lets_unexpected_errors_in_a_group_through() -> None:
    def main() -> int:
        raise ExceptionGroup("tasks", [ChemWatchError("ours"), KeyError("bug")])

    with pytest.raises(ExceptionGroup):
        guarded(main)
