"""The moving parts of ``chemwatch bench ingest``: a generated plant, private Kafka
topics, MQTT session clean-up, and the publisher processes."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from paho.mqtt.enums import CallbackAPIVersion

from common import kafka as kafka_clients
from common.settings import BaseProcessSettings

UNITS = 10
SENSORS_PER_UNIT = 10
SITE = "bench-site"
BATCH = 100
_WINDOW = 500  # unacknowledged QoS 1 messages per publisher


# ---------------------------------------------------------------------- setup


def write_plant(path: Path) -> None:
    sensors = lambda u: [  # noqa: E731 - a one-line table
        {"id": f"U{u}-S{s}", "kind": "flow", "unit": "m3/h", "range": [0, 1e15]}
        for s in range(SENSORS_PER_UNIT)
    ]
    doc = {
        "name": "bench plant",
        "sites": [
            {
                "id": SITE,
                "name": "bench",
                "enterprise": "bench",
                "region": "bench",
                "units": [
                    {
                        "id": f"U{u}",
                        "name": f"unit {u}",
                        "kind": "process_unit",
                        "sensors": sensors(u),
                    }
                    for u in range(UNITS)
                ],
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc))


async def create_topics(settings: BaseProcessSettings, *names: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_clients.connection_options(settings.kafka))
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(n, 6, 1, topic_configs={"message.timestamp.type": "LogAppendTime"})
                for n in names
            ]
        )
    finally:
        await admin.close()


async def delete_topics(settings: BaseProcessSettings, *names: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_clients.connection_options(settings.kafka))
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()


def clear_session(settings: BaseProcessSettings, client_id: str) -> None:
    """Drop a bench bridge's persistent session so the shared broker keeps nothing."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    with contextlib.suppress(OSError):
        client.connect(settings.mqtt.host, settings.mqtt.port, clean_start=True)
        client.loop_start()
        time.sleep(0.2)
        client.disconnect()
        client.loop_stop()


# ---------------------------------------------------------------------- publishers


def publisher(
    host: str,
    port: int,
    prefix: str,
    scenario: str,
    first: int,
    count: int,
    rate: float,
    out: Any,
) -> None:
    """Publish ``count`` messages (sequence numbers from ``first``) and wait for PUBACKs.

    At most ``_WINDOW`` messages are unacknowledged at a time, so the ``ts`` written
    into a payload is close to when it goes on the wire (a publisher that queues
    everything up front would make the latency figure measure its own queue).
    ``rate`` (messages/s, 0 = as fast as possible) paces the publisher.
    """
    acked = 0

    def on_publish(*_a: Any) -> None:
        nonlocal acked
        acked += 1

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(_WINDOW)
    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    start = time.time()
    seq = first * (BATCH if scenario == "batch" else 1)
    for i in range(count):
        while i - acked >= _WINDOW:
            time.sleep(0.0005)
        if rate:
            due = start + i / rate
            if due > time.time():
                time.sleep(due - time.time())
        now_ms = int(time.time() * 1000)
        u = (first + i) % UNITS
        if scenario == "single":
            topic = f"{prefix}/{SITE}/U{u}/U{u}-S{seq % SENSORS_PER_UNIT}"
            payload = f'{{"ts":{now_ms},"value":{seq}}}'
            seq += 1
        else:
            items = []
            for _ in range(BATCH):
                items.append(
                    f'{{"sensor":"U{u}-S{seq % SENSORS_PER_UNIT}","ts":{now_ms},"value":{seq}}}'
                )
                seq += 1
            topic = f"{prefix}/{SITE}/U{u}"
            payload = '{"readings":[' + ",".join(items) + "]}"
        client.publish(topic, payload, qos=1)
    deadline = time.monotonic() + 120
    while acked < count and time.monotonic() < deadline:
        time.sleep(0.01)
    end = time.time()
    client.disconnect()
    client.loop_stop()
    cpu = psutil.Process().cpu_times()
    out.put((start, end, cpu.user + cpu.system))
