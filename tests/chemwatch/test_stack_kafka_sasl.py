"""The local Kafka's optional SASL_SSL listener: server.properties, SCRAM accounts, checks."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest

from chemwatch.stack.config import KafkaScramUser, StackError, StackSettings
from chemwatch.stack.kafka import Kafka, render_server_properties, scram_argument
from common.settings import BaseProcessSettings, KafkaSettings

CERT = "-----BEGIN CERTIFICATE-----\nMIIBcert\nline2\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIEkey\nline2\n-----END PRIVATE KEY-----\n"


def _java_properties(text: str) -> dict[str, str]:
    """Parse like java.util.Properties: a trailing backslash continues the line."""
    out: dict[str, str] = {}
    logical = re.sub(r"\\\n\s*", "", text)
    for line in logical.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert key not in out, f"duplicate key {key}"
            out[key] = value
    return out


def test_sasl_ssl_listener_properties(tmp_path: Path) -> None:
    text = render_server_properties(
        "127.0.0.1", 19092, 19093, tmp_path, sasl_ssl_port=19094, tls_pem=(CERT, KEY)
    )
    props = _java_properties(text)
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,SASL_SSL://127.0.0.1:19094"
    )
    assert props["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094"
    )
    assert "SASL_SSL:SASL_SSL" in props["listener.security.protocol.map"].split(",")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    prefix = "listener.name.sasl_ssl."
    assert props[prefix + "sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "ScramLoginModule required" in props[prefix + "scram-sha-512.sasl.jaas.config"]
    assert props[prefix + "ssl.keystore.type"] == "PEM"
    # PEM inline, one value: Kafka strips the whitespace inside the base64 body
    chain = props[prefix + "ssl.keystore.certificate.chain"]
    assert chain.startswith("-----BEGIN CERTIFICATE-----")
    assert "MIIBcert" in chain
    assert props[prefix + "ssl.keystore.key"].endswith("-----END PRIVATE KEY-----")


def test_plain_stack_has_no_sasl_listener(tmp_path: Path) -> None:
    props = _java_properties(render_server_properties("127.0.0.1", 19092, 19093, tmp_path))
    assert "SASL_SSL" not in props["listeners"]
    assert not any(k.startswith("listener.name.") for k in props)


def test_scram_argument_carries_the_salted_password_not_the_password() -> None:
    user = KafkaScramUser(username="svc", password="s3cret pw")
    salt = b"0123456789abcdef"
    arg = scram_argument(user, salt)
    assert "s3cret" not in arg
    fields = dict(
        part.split("=", 1) for part in arg.removeprefix("SCRAM-SHA-512=[")[:-1].split(",")
    )
    assert fields["name"] == "svc"
    assert base64.b64decode(fields["salt"]) == salt
    iterations = int(fields["iterations"])
    assert iterations >= 4096  # Kafka's minimum for SCRAM-SHA-512
    expected = hashlib.pbkdf2_hmac("sha512", b"s3cret pw", salt, iterations)
    assert base64.b64decode(fields["saltedpassword"]) == expected
    # a fresh random salt each time
    assert scram_argument(user) != scram_argument(user)


@pytest.mark.parametrize("name", ["a,b", "a=b", 'a"b', "a b", ""])
def test_scram_user_names_that_would_break_the_argument_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="username"):
        KafkaScramUser(username=name, password="x")


def _kafka(tmp_path: Path, **stack: object) -> Kafka:
    settings = StackSettings.model_validate({"home": tmp_path} | stack)
    return Kafka(
        settings, BaseProcessSettings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:19092"))
    )


def test_sasl_listener_is_checked_before_start(tmp_path: Path) -> None:
    cert, key, rsa = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "rsa.pem"
    cert.write_text(CERT)
    key.write_text(KEY)
    rsa.write_text(KEY.replace("PRIVATE KEY", "RSA PRIVATE KEY"))
    users = [{"username": "svc", "password": "pw"}]
    with pytest.raises(StackError, match=r"needs stack\.kafka_tls_certfile"):
        _kafka(tmp_path, kafka_sasl_ssl_port=19094, kafka_scram_users=users)._tls_pem()
    with pytest.raises(StackError, match="kafka_scram_users"):
        _kafka(
            tmp_path, kafka_sasl_ssl_port=19094, kafka_tls_certfile=cert, kafka_tls_keyfile=key
        )._tls_pem()
    with pytest.raises(StackError, match="PKCS#8"):
        _kafka(
            tmp_path,
            kafka_sasl_ssl_port=19094,
            kafka_tls_certfile=cert,
            kafka_tls_keyfile=rsa,
            kafka_scram_users=users,
        )._tls_pem()
    with pytest.raises(StackError, match="already the PLAINTEXT"):
        _kafka(
            tmp_path,
            kafka_sasl_ssl_port=19092,
            kafka_tls_certfile=cert,
            kafka_tls_keyfile=key,
            kafka_scram_users=users,
        )._tls_pem()
    ok = _kafka(
        tmp_path,
        kafka_sasl_ssl_port=19094,
        kafka_tls_certfile=cert,
        kafka_tls_keyfile=key,
        kafka_scram_users=users,
    )
    assert ok._tls_pem() == (CERT, KEY)
    assert [e.purpose for e in ok.endpoints()] == ["PLAINTEXT", "CONTROLLER", "SASL_SSL"]
