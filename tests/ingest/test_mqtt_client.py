"""The bridge's MQTT client reads every packet its socket holds before it writes.

paho reads one packet per network-loop pass for a subscriber; when the broker dies the
next write fails and paho closes the socket with the rest unread, and with a snapshot
broker those messages may exist nowhere else (docs/faults.md). On the real broker: a
subscriber with its loop stopped gets many messages into its socket, then one read pass.
"""

from __future__ import annotations

import socket
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from common import mqtt as mqtt_clients
from common.settings import BaseProcessSettings
from ingest.mqtt_client import ReadAllClient
from tests.fixtures.processes import wait_until

pytestmark = pytest.mark.integration

MESSAGES = 50


def received_in_one_read(stack: BaseProcessSettings, client_class: type[mqtt.Client]) -> int:
    """Messages handled by one ``loop_read`` once ``MESSAGES`` wait in the socket."""
    tag = uuid.uuid4().hex[:12]
    topic = f"test/{tag}/readall"
    got: list[int] = []
    subscribed: list[int] = []
    sub = mqtt_clients.make_client(
        stack.mqtt, f"{tag}-sub", persistent=False, manual_ack=True, client_class=client_class
    )
    sub.on_message = lambda _c, _u, msg: got.append(msg.mid)
    sub.on_subscribe = lambda _c, _u, mid, _codes, _p: subscribed.append(mid)
    pub = mqtt_clients.make_client(stack.mqtt, f"{tag}-pub", persistent=False)
    try:
        sub.connect(stack.mqtt.host, stack.mqtt.port)
        sub.subscribe(topic, qos=1)
        deadline = time.monotonic() + 10
        while not subscribed and time.monotonic() < deadline:  # we drive the loop ourselves
            sub.loop(0.1)
        assert subscribed, "no SUBACK"
        pub.connect(stack.mqtt.host, stack.mqtt.port)
        pub.loop_start()
        infos = [pub.publish(topic, f"{i}".encode(), qos=1) for i in range(MESSAGES)]
        for info in infos:
            info.wait_for_publish(10)
        sock = sub.socket()
        assert isinstance(sock, socket.socket)
        # PUBLISH: fixed header 2, topic 2 + len, packet id 2, properties 1, payload
        size = sum(2 + 2 + len(topic) + 2 + 1 + len(f"{i}") for i in range(MESSAGES))
        wait_until(lambda: unread(sock) >= size, 10, "every message in the socket")
        sub.loop_read()
        return len(got)
    finally:
        pub.disconnect()
        pub.loop_stop()
        sub.disconnect()


def unread(sock: socket.socket) -> int:
    """Bytes waiting in the socket (looked at, not consumed)."""
    try:
        return len(sock.recv(1 << 16, socket.MSG_PEEK))
    except BlockingIOError:
        return 0


def test_one_read_pass_takes_every_packet_in_the_socket(stack: BaseProcessSettings) -> None:
    assert received_in_one_read(stack, ReadAllClient) == MESSAGES


def test_plain_paho_reads_one_packet_per_pass(stack: BaseProcessSettings) -> None:
    """Why ReadAllClient exists: if this fails, paho now reads more per pass and the
    subclass may be dropped (check docs/faults.md's Mosquitto findings first)."""
    assert received_in_one_read(stack, mqtt.Client) == 1
