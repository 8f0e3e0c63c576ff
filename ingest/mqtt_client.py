"""The bridge's paho client: reads everything the broker has sent before it writes.

paho 2.x's network loop reads one packet per ``select()`` when the client has no
publishes of its own in flight (it sizes each read batch by them), then writes what it
has queued. For a subscriber that acknowledges late, this leaves messages unread in the
socket; when the broker dies (``kill -9``), its reset makes the next write (a PUBACK)
fail and paho closes the socket with those messages still in it. A broker whose
persistence is a snapshot (Mosquitto) may hold them nowhere else: the publisher has its
PUBACK, the snapshot predates them, so they are lost. Reading every packet the socket
already holds before going on to write hands them to the bridge, which forwards them to
Kafka even though it can no longer acknowledge them (see ``ingest.acks``).
"""

from __future__ import annotations

import select
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

# Packets read per loop at most, so writes (acks, pings) still get their turn.
READ_BATCH = 1000


def _readable(sock: Any) -> bool:
    """The socket has bytes to read (or an error/EOF to report) right now."""
    pending = getattr(sock, "pending", None)  # TLS: decrypted bytes not read yet
    if pending is not None and pending() > 0:
        return True
    return bool(select.select([sock], [], [], 0)[0])


class ReadAllClient(mqtt.Client):
    """A paho client whose reads drain the socket (up to READ_BATCH packets) first."""

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read and handle packets while the socket has more, then return."""
        rc = super().loop_read(max_packets)
        for _ in range(READ_BATCH - 1):
            sock = self.socket()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or sock is None or not _readable(sock):
                break
            rc = super().loop_read(max_packets)
        return rc
