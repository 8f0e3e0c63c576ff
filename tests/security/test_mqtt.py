"""MQTT security on a private broker: passwords, per-site ACLs, TLS, and the bridge on it."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from common.readings import decode_batch
from common.settings import BaseProcessSettings
from tests.fixtures.processes import ServiceFactory, read_topic
from tests.fixtures.services import Isolation
from tests.security.broker import (
    GATEWAY_PASSWORD,
    GATEWAY_USER,
    PREFIX,
    SITE_A,
    SITE_B,
    PrivateBroker,
    client,
    connect_result,
)

pytestmark = pytest.mark.integration


def _gateway(broker: PrivateBroker) -> Any:
    return broker.mqtt(username=GATEWAY_USER, password=GATEWAY_PASSWORD)


def _reading(value: float) -> bytes:
    return json.dumps({"ts": int(time.time() * 1000), "value": value}).encode()


def test_gateway_cannot_publish_to_another_site(broker: PrivateBroker) -> None:
    received: list[str] = []
    got_own = threading.Event()
    subscribed = threading.Event()
    sub = client(broker.mqtt())

    def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        received.append(msg.topic)
        if msg.topic.startswith(f"{PREFIX}/{SITE_A}/"):
            got_own.set()

    sub.on_message = on_message
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.on_connect = lambda c, *_a: c.subscribe(f"{PREFIX}/#", qos=1)
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    pub = client(_gateway(broker))
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        assert subscribed.wait(10), "bridge account could not subscribe"
        # Foreign site first: if the ACL let it through it would arrive before our own.
        pub.publish(f"{PREFIX}/{SITE_B}/R201/R201-TT-01", _reading(50.0), qos=1).wait_for_publish(
            10
        )
        pub.publish(f"{PREFIX}/{SITE_A}/TK101/TK101-PT-01", _reading(7.0), qos=1).wait_for_publish(
            10
        )
        assert got_own.wait(10), "the gateway's own-site reading never arrived"
        time.sleep(0.5)
    finally:
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()
    assert received == [f"{PREFIX}/{SITE_A}/TK101/TK101-PT-01"]


def test_gateway_cannot_subscribe(broker: PrivateBroker) -> None:
    """A gateway account can write its site, not read anybody's readings."""
    granted: list[Any] = []
    done = threading.Event()
    c = client(_gateway(broker))

    def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        granted.extend(codes)
        done.set()

    c.on_subscribe = on_subscribe
    c.on_connect = lambda cl, *_a: cl.subscribe(f"{PREFIX}/{SITE_A}/#", qos=1)
    received: list[str] = []
    c.on_message = lambda _c, _u, msg: received.append(msg.topic)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    pub = client(broker.mqtt())
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        assert done.wait(10)
        pub.publish(f"{PREFIX}/{SITE_A}/TK101/TK101-PT-01", _reading(7.0), qos=1).wait_for_publish(
            10
        )
        time.sleep(0.5)
    finally:
        for cl in (pub, c):
            cl.disconnect()
            cl.loop_stop()
    # Mosquitto grants the subscription but the ACL never delivers a message on it.
    assert received == []


# Mosquitto answers both with "Not authorized" (MQTT 5 reason 0x87), so as not to tell
# an attacker whether the user exists.
REFUSED = {"Not authorized", "Bad user name or password"}


@pytest.mark.parametrize(
    "update",
    [
        {"password": "wrong-password"},
        {"username": GATEWAY_USER, "password": "wrong-password"},
        {"username": "nobody", "password": "x"},
        {"username": None, "password": None},
    ],
    ids=["bridge-wrong-password", "gateway-wrong-password", "unknown-user", "anonymous"],
)
def test_bad_credentials_are_refused(broker: PrivateBroker, update: dict[str, Any]) -> None:
    assert connect_result(broker.mqtt(**update)) in REFUSED


def test_correct_credentials_connect_over_tls(broker: PrivateBroker) -> None:
    assert connect_result(broker.mqtt()) == "Success"
    assert connect_result(_gateway(broker)) == "Success"


def test_plaintext_client_cannot_talk_to_the_tls_listener(broker: PrivateBroker) -> None:
    assert connect_result(broker.mqtt(tls=False), timeout=3) == "no CONNACK"


def test_tls_with_an_unknown_ca_is_rejected(broker: PrivateBroker, tmp_path: Path) -> None:
    from tests.security.broker import make_ca

    trusted = ssl.create_default_context(cafile=str(broker.ca_file))
    with (
        socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw,
        trusted.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    other_ca, _, _ = make_ca(tmp_path)
    other = ssl.create_default_context(cafile=str(other_ca))
    with (
        socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        other.wrap_socket(raw, server_hostname="127.0.0.1")


def test_bridge_authenticates_over_tls_and_forwards_gateway_readings(
    broker: PrivateBroker,
    service_factory: ServiceFactory,
    isolation: Isolation,
    stack: BaseProcessSettings,
) -> None:
    bridge = service_factory("ingest", env=broker.env())
    pub = client(_gateway(broker))
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        # The bridge's persistent session may not exist yet: publish until it arrives.
        deadline = time.monotonic() + 60
        records: list[Any] = []
        while not records and time.monotonic() < deadline:
            assert bridge.alive(), bridge.log()
            pub.publish(
                f"{PREFIX}/{SITE_A}/TK101/TK101-PT-01", _reading(7.25), qos=1
            ).wait_for_publish(10)
            try:
                records = read_topic(stack, isolation.readings_topic, 1, timeout_s=2)
            except AssertionError:
                continue
    finally:
        pub.disconnect()
        pub.loop_stop()
    assert records, f"no reading reached Kafka through the TLS bridge:\n{bridge.log()}"
    batch = decode_batch(records[0].value)
    assert "TK101-PT-01" in list(batch.sensor_ids)
    assert bridge.stop() == 0
