"""The bridge acknowledges a packet id only on the connection it arrived on.

After a broker crash the restored session may give the packet ids of messages the bridge
received before the crash to other messages (Mosquitto restores its id counter from the
last snapshot): a late PUBACK on the new connection would acknowledge the wrong message.
These tests need no broker: they drive the rule directly and through the callbacks the
bridge gives paho.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from common.registry import load_registry
from common.settings import load_settings
from ingest.acks import ConnectionAcks
from ingest.bridge import Bridge, Flush, Inbound
from ingest.settings import IngestSettings

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """Stands in for ``paho.mqtt.client.Client.ack``: records the acks it is asked for."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, int]] = []

    def ack(self, mid: int, qos: int) -> int:
        self.acks.append((mid, qos))
        return 0


@dataclass
class Msg:
    mid: int
    qos: int
    connection: int


def test_acks_messages_of_the_current_connection_in_order() -> None:
    acks, client = ConnectionAcks(), Recorder()
    now = acks.connection
    stale = acks.ack(client, [Msg(7, 1, now), Msg(3, 1, now), Msg(0, 0, now), Msg(9, 2, now)])
    assert stale == 0
    assert client.acks == [(7, 1), (3, 1), (9, 2)]  # QoS 0 has nothing to acknowledge


def test_messages_of_an_earlier_connection_are_not_acked() -> None:
    acks, client = ConnectionAcks(), Recorder()
    old = acks.connection
    acks.new_connection()  # disconnected
    acks.new_connection()  # connected again
    new = acks.connection
    assert new != old
    stale = acks.ack(client, [Msg(1, 1, old), Msg(1, 1, new), Msg(2, 1, old), Msg(5, 1, new)])
    assert stale == 2
    # packet id 1 of the new connection is acked; id 1 of the old one is not, although
    # they are the same number: it may name another message now
    assert client.acks == [(1, 1), (5, 1)]


def test_a_disconnect_alone_voids_the_ids() -> None:
    """paho queues a PUBACK on whatever socket is current: between the disconnect and
    the next CONNACK an ack would go out on the new socket, so a disconnect already
    voids the ids (not only the next connect)."""
    acks, client = ConnectionAcks(), Recorder()
    old = acks.connection
    acks.new_connection()
    assert acks.ack(client, [Msg(4, 1, old)]) == 1
    assert client.acks == []


class SwitchingRecorder(Recorder):
    """Starts a connection switch on another thread in the middle of a flush's acks."""

    def __init__(self, acks: ConnectionAcks) -> None:
        super().__init__()
        self.gate = acks
        self.switch: threading.Thread | None = None

    def ack(self, mid: int, qos: int) -> int:
        if self.switch is None:
            self.switch = threading.Thread(target=self.gate.new_connection)
            self.switch.start()
            self.switch.join(0.2)  # blocked: the flush's acks are checked and queued first
            assert self.switch.is_alive()
        return super().ack(mid, qos)


def test_a_switch_waits_for_the_acks_already_checked() -> None:
    """A flush's acks are checked and queued under the lock the switch takes: none can
    be checked against the old connection and queued after the switch."""
    acks = ConnectionAcks()
    client = SwitchingRecorder(acks)
    now = acks.connection
    assert acks.ack(client, [Msg(m, 1, now) for m in (1, 2, 3)]) == 0
    assert client.switch is not None
    client.switch.join(5)
    assert not client.switch.is_alive()
    assert client.acks == [(1, 1), (2, 1), (3, 1)]
    assert acks.connection != now
    assert acks.ack(client, [Msg(4, 1, now)]) == 1


# ---------------------------------------------------------------------- the bridge's wiring


def bridge() -> Bridge:
    settings = load_settings(IngestSettings, environ={})
    return Bridge(settings, load_registry(ROOT / "examples" / "plant.yaml"))


def deliver(client: mqtt.Client, mid: int) -> None:
    """What paho's network thread does for a QoS 1 PUBLISH with packet id ``mid``."""
    msg = mqtt.MQTTMessage(mid, b"chemwatch/site/unit/sensor")
    msg.qos = 1
    msg.payload = b'{"ts": 1, "value": 1.0}'
    cast(Any, client.on_message)(client, None, msg)


async def complete(b: Bridge, client: Recorder, messages: list[Inbound]) -> None:
    """Finish a flush whose Kafka records were all acknowledged."""
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    b._inflight += len(messages)
    await b._complete(Flush(messages, cast(Any, done)), cast(Any, client))


async def test_the_bridge_acks_only_what_came_on_the_current_connection() -> None:
    b = bridge()
    client = b._mqtt_client(asyncio.get_running_loop())
    props = Properties(PacketTypes.CONNACK)  # type: ignore[no-untyped-call]
    ok = ReasonCode(PacketTypes.CONNACK, "Success")
    flags = mqtt.ConnectFlags(session_present=True)
    cast(Any, client.on_connect)(client, None, flags, ok, props)
    deliver(client, 1)
    deliver(client, 2)
    before = list(b._inbox)
    b._inbox.clear()
    # the broker goes away and comes back, its restored session handing out 1 and 2 again
    lost = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")
    disconnect_flags = mqtt.DisconnectFlags(is_disconnect_packet_from_server=False)
    cast(Any, client.on_disconnect)(client, None, disconnect_flags, lost, props)
    cast(Any, client.on_connect)(client, None, flags, ok, props)
    deliver(client, 1)
    after = list(b._inbox)
    b._inbox.clear()

    recorder = Recorder()
    await complete(b, recorder, before)  # Kafka acked them only after the reconnect
    assert recorder.acks == []  # forwarded, but id 1 and 2 are not theirs any more
    await complete(b, recorder, after)
    assert recorder.acks == [(1, 1)]
    assert b._held() == 0
