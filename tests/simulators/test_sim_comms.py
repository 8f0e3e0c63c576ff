"""Communication faults on the real broker: a gateway's MQTT will, and malformed
payloads that ingest dead-letters with a reason."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from common.deadletter import DeadLetter
from common.settings import BaseProcessSettings
from tests.fixtures.processes import ServiceFactory, read_topic, wait_until
from tests.fixtures.services import Isolation

pytestmark = pytest.mark.integration

SCENARIO = """
name: comms
duration: 40
events:
  - {id: gw, kind: gateway_offline, unit: TK102, start: 10, duration: 12}
  - {id: garbage, kind: malformed, sensors: [CL401-GD-01], start: 5, duration: 5}
"""


def test_gateway_will_and_malformed_payloads(
    stack: BaseProcessSettings, isolation: Isolation, service_factory: ServiceFactory,
    tmp_path: Path,
) -> None:  # fmt: skip
    states: list[bool] = []
    lock = threading.Lock()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            states.append(json.loads(msg.payload)["online"])

    sub.on_message = on_message
    sub.connect(stack.mqtt.host, stack.mqtt.port)
    sub.subscribe(f"{isolation.mqtt_prefix}/haibin-terminal/TK102/gateway/state", qos=1)
    sub.loop_start()
    scenario = tmp_path / "comms.yaml"
    scenario.write_text(SCENARIO)
    ingest = service_factory("ingest")
    wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")
    try:
        sim = service_factory("simulators", "--scenario", str(scenario), "--speed", "4",
                              "--truth", str(tmp_path / "t.jsonl"))  # fmt: skip
        assert sim.proc.wait(60) == 0, sim.log()
        # online at start, the will when it drops off, online again when it returns
        wait_until(lambda: states[:3] == [True, False, True], 10, "gateway online/offline/online")
    finally:
        sub.disconnect()
        sub.loop_stop()
    sent = int(re.findall(r"(\d+) malformed", sim.log())[-1])
    assert sent >= 4  # one a second for 5 s of simulated time
    records = read_topic(stack, isolation.dlq_topic, sent)
    assert len(records) == sent
    letters = [DeadLetter.from_json(r.value) for r in records]
    assert {d.topic.rsplit("/", 1)[-1] for d in letters} == {"CL401-GD-01"}
    assert {d.reason for d in letters} <= {"not_json", "missing_field", "wrong_type",
                                            "bad_timestamp"}  # fmt: skip
    assert len({d.reason for d in letters}) >= 3
