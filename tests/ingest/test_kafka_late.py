"""Services started before Kafka is reachable wait for it instead of exiting."""

from __future__ import annotations

import json
import time

import pytest

from common.readings import decode_batch
from common.settings import BaseProcessSettings
from tests.fixtures.late_proxy import LateProxy
from tests.fixtures.processes import (
    Publisher,
    ServiceFactory,
    read_topic,
    wait_until,
)
from tests.fixtures.services import Isolation

pytestmark = pytest.mark.integration


def test_a_bridge_started_before_kafka_waits_then_forwards(
    stack: BaseProcessSettings,
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
    late_kafka: LateProxy,
) -> None:
    bootstrap = {"CHEMWATCH_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{late_kafka.port}"}
    bridge = service_factory("ingest", env=bootstrap)
    wait_until(lambda: "waits for Kafka" in bridge.log(), 30, "the bridge to wait for Kafka")
    time.sleep(2)
    assert bridge.alive(), bridge.log()

    late_kafka.open()  # the broker "comes up" (bootstrap through the proxy)
    wait_until(lambda: "subscription confirmed" in bridge.log(), 60, "the bridge to subscribe")
    publisher.publish(
        f"{isolation.mqtt_prefix}/haibin-terminal/TK101/TK101-PT-01",
        json.dumps({"ts": int(time.time() * 1000), "value": 4.5}),
    )
    [record] = read_topic(stack, isolation.readings_topic, 1)
    assert decode_batch(record.value).value.tolist() == [4.5]
    assert bridge.stop() == 0


def test_a_bridge_waiting_for_kafka_stops_cleanly(
    service_factory: ServiceFactory, late_kafka: LateProxy
) -> None:
    bootstrap = {"CHEMWATCH_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{late_kafka.port}"}
    bridge = service_factory("ingest", env=bootstrap)
    wait_until(lambda: "waits for Kafka" in bridge.log(), 30, "the bridge to wait for Kafka")
    assert bridge.stop(15) == 0
