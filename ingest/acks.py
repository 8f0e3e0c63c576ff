"""Acknowledge an MQTT message only on the connection it arrived on.

A packet id names a message only within the session state both sides agree on. After a
broker crash that state is not what the bridge saw: Mosquitto restores the session from
its last snapshot, including the counter it draws packet ids from, so the ids it handed
out after that snapshot are handed out again, to other messages. A PUBACK sent on the
new connection for an id received on the old one would then acknowledge a message the
bridge may never have seen. paho does not guard against this: ``Client.ack`` queues a
PUBACK on whatever connection is current (a reconnect drops the PUBACKs queued before
it, not those queued after).

So every received message carries the number of the connection it came on, and is
acknowledged only while that connection is still the current one. A message from an
older connection is still forwarded to Kafka (a duplicate at worst: the database
dedupes on sensor and time) but never acknowledged; if the broker still has it, it
sends it again on the new connection, and that copy is acknowledged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol


class Acknowledger(Protocol):
    """What we need of the MQTT client (paho's ``Client.ack``)."""

    def ack(self, mid: int, qos: int) -> object:
        """Send the PUBACK (QoS 1) or PUBCOMP (QoS 2) for packet id ``mid``."""
        ...


class Received(Protocol):
    """A received message as far as acknowledging it goes."""

    @property
    def mid(self) -> int: ...

    @property
    def qos(self) -> int: ...

    @property
    def connection(self) -> int: ...


class ConnectionAcks:
    """Numbers MQTT connections and acknowledges messages of the current one only.

    ``new_connection`` must be called from the MQTT client's callbacks on every
    disconnect and every connect (paho's network thread); ``connection`` is the number
    to stamp on a message received now; ``ack`` may run on any thread.
    """

    def __init__(self) -> None:
        # Held while checking and queueing acks, and while switching connection: an ack
        # checked against the old connection cannot be queued after the switch (paho
        # queues it on the new socket if it comes after its reconnect cleared the queue).
        self._lock = threading.Lock()
        self._connection = 0

    @property
    def connection(self) -> int:
        """The current connection's number."""
        return self._connection

    def new_connection(self) -> None:
        """The connection ended or a new one began: older packet ids are void."""
        with self._lock:
            self._connection += 1

    def ack(self, client: Acknowledger, messages: Iterable[Received]) -> int:
        """Acknowledge, in order, the QoS > 0 ``messages`` of the current connection.

        Returns how many were left unacknowledged because they came on an older one.
        """
        stale = 0
        with self._lock:
            current = self._connection
            for item in messages:
                if not item.qos:
                    continue
                if item.connection != current:
                    stale += 1
                    continue
                client.ack(item.mid, item.qos)
        return stale
