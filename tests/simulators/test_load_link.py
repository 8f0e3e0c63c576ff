"""The generator's paho driver: reconnects by itself, waits for acks up to a deadline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from paho.mqtt.enums import MQTTErrorCode

from simulators import load
from simulators.load import Link


@dataclass
class FakeClient:
    """paho's Client as far as Link uses it; ``results`` are what ``loop`` returns."""

    results: list[MQTTErrorCode]
    refuse: int = 0  # reconnect attempts that fail first
    reconnects: int = 0
    connected: bool = False
    loops: list[float] = field(default_factory=list)

    def loop(self, timeout: float) -> MQTTErrorCode:
        self.loops.append(timeout)
        return self.results.pop(0) if self.results else MQTTErrorCode.MQTT_ERR_SUCCESS

    def reconnect(self) -> None:
        self.reconnects += 1
        if self.reconnects <= self.refuse:
            raise ConnectionRefusedError("broker down")
        self.connected = True

    def is_connected(self) -> bool:
        return self.connected


@dataclass
class Info:
    acked_after: int  # is_published() calls before it reports True
    calls: int = 0

    def is_published(self) -> bool:
        self.calls += 1
        return self.calls > self.acked_after


@pytest.fixture(autouse=True)
def _fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Link, "RETRY_S", 0.001)


def test_a_lost_connection_is_reconnected_while_waiting() -> None:
    client = FakeClient([MQTTErrorCode.MQTT_ERR_CONN_LOST], refuse=2)
    link = Link(client)  # type: ignore[arg-type]
    link.wait(0)  # loop says the connection is gone: the first reconnect is refused
    assert client.reconnects == 1
    assert not client.connected
    client.results = [MQTTErrorCode.MQTT_ERR_NO_CONN, MQTTErrorCode.MQTT_ERR_NO_CONN]
    link.wait(0)
    link.wait(0)
    assert client.reconnects == 3
    assert client.connected


def test_success_and_would_block_need_no_reconnect() -> None:
    client = FakeClient([MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN])
    link = Link(client)  # type: ignore[arg-type]
    link.wait(0)
    link.wait(0)
    assert client.reconnects == 0
    assert client.loops == [0, 0]  # never blocks inside paho: the generator keeps time


def test_connect_retries_until_the_broker_answers_and_gives_up_at_the_deadline() -> None:
    client = FakeClient([], refuse=3)
    Link(client).connect(deadline=time.monotonic() + 5)  # type: ignore[arg-type]
    assert client.connected
    assert client.reconnects == 4
    down = FakeClient([], refuse=10**9)
    with pytest.raises(ConnectionError, match="no MQTT connection"):
        Link(down).connect(deadline=time.monotonic() + 0.05)  # type: ignore[arg-type]


def test_flush_waits_for_every_ack_but_not_past_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(load.time, "sleep", lambda _s: None)
    client = FakeClient([])
    infos = [Info(0), Info(3), Info(1)]
    Link(client).flush(infos, deadline=time.monotonic() + 5)  # type: ignore[arg-type]
    assert all(i.calls > i.acked_after for i in infos)
    never = Info(10**9)
    start = time.monotonic()
    Link(client).flush([never], deadline=start + 0.05)  # type: ignore[arg-type, list-item]
    assert 0.05 <= time.monotonic() - start < 2
