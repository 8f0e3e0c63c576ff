"""Sparkplug B through the real bridge and Mosquitto: a test edge node publishes births,
data by alias, a sequence gap (answered by a rebirth command) and deaths (stale)."""

from __future__ import annotations

import math
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from common import sparkplug_b_pb2 as pb
from common.readings import decode_batch
from common.registry import load_registry
from common.settings import BaseProcessSettings
from tests.fixtures.processes import Publisher, ServiceFactory, metric, read_topic, wait_until
from tests.fixtures.services import ROOT, Isolation
from tests.ingest.sparkplug_node import EdgeNode

pytestmark = pytest.mark.integration

TK101 = ["TK101-PT-01", "TK101-PT-02", "TK101-TT-01"]


def private_plant(tmp_path: Path, group: str) -> Path:
    """The example plant with its Sparkplug group renamed, so no other test sees it."""
    doc = yaml.safe_load((ROOT / "examples" / "plant.yaml").read_text())
    for site in doc["sites"]:
        for unit in site["units"]:
            if "sparkplug" in unit:
                unit["sparkplug"]["group"] = group
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_sparkplug_edge_node_through_the_bridge(
    stack: BaseProcessSettings,
    isolation: Isolation,
    service_factory: ServiceFactory,
    publisher: Publisher,
    tmp_path: Path,
) -> None:
    group = f"g{isolation.tag}"
    plant = private_plant(tmp_path, group)
    registry = load_registry(plant)
    units = {s.sensor.id: s.unit.id for s in registry.sensors}
    n101 = sum(u == "TK101" for u in units.values())
    n102 = sum(u == "TK102" for u in units.values())

    commands: list[pb.Payload] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda _c, _u, msg: commands.append(pb.Payload.FromString(msg.payload))
    watcher.connect(stack.mqtt.host, stack.mqtt.port)
    watcher.subscribe(f"spBv1.0/{group}/NCMD/#", qos=1)
    watcher.loop_start()
    try:
        ingest = service_factory(
            "ingest",
            env={"CHEMWATCH_PLANT": str(plant), "CHEMWATCH_INGEST__SPARKPLUG": "true"},
        )
        wait_until(lambda: "subscription confirmed" in ingest.log(), 60, "ingest to subscribe")
        node = EdgeNode(group, "lpg-farm-rtu", bdseq=7)
        pub = publisher.publish
        pub(node.topic("NBIRTH"), node.nbirth({"TK102/Pressure": 6.5}))
        pub(node.topic("DBIRTH", "TK101"), node.dbirth(dict.fromkeys(TK101, 7.0)))
        pub(node.topic("DDATA", "TK101"), node.data({"TK101-PT-01": 7.5, "TK101-TT-01": 21.0}))
        pub(node.topic("NDATA"), node.data({"TK102/Pressure": 6.75}))
        node.seq += 2  # two messages "lost"
        pub(node.topic("DDATA", "TK101"), node.data({"TK101-PT-02": 8.0}))
        wait_until(lambda: commands, 30, "a rebirth command after the sequence gap")
        pub(node.topic("DDEATH", "TK101"), node.ddeath())
        pub(node.topic("NDEATH"), node.ndeath(bdseq=6))  # late will of an older session
        pub(node.topic("NDEATH"), node.ndeath())

        expected = 1 + 3 + 2 + 1 + 1 + n101 + (n101 + n102)
        got: list[tuple[str, float, int]] = []

        def all_in() -> bool:
            nonlocal got
            records = read_topic(stack, isolation.readings_topic, 1)
            got = [
                (s, v, q)
                for b in (decode_batch(r.value) for r in records)
                for s, v, q in zip(
                    b.sensors().tolist(), b.value.tolist(), b.quality.tolist(), strict=True
                )
            ]
            return len(got) >= expected

        wait_until(all_in, 60, f"{expected} readings")
        assert len(got) == expected
        values = sorted((s, v) for s, v, _ in got if not math.isnan(v))
        assert values == sorted(
            [("TK102-PT-01", 6.5), ("TK102-PT-01", 6.75), ("TK101-PT-01", 7.5)]
            + [("TK101-TT-01", 21.0), ("TK101-PT-02", 8.0)]
            + [(s, 7.0) for s in TK101]
        )
        stale = [(s, q) for s, v, q in got if math.isnan(v)]
        assert all(q == 2 for _, q in stale)  # quality bad
        per_sensor = {s: sum(x == s for x, _ in stale) for s, _ in stale}
        # TK101 died twice (DDEATH, then with its node), TK102 once (NDEATH): the
        # NDEATH with the old bdSeq changed nothing
        assert per_sensor == {
            s: 2 if u == "TK101" else 1 for s, u in units.items() if u in ("TK101", "TK102")
        }
        assert commands[0].metrics[0].name == "Node Control/Rebirth"
        assert commands[0].metrics[0].boolean_value
        assert metric(ingest, "chemwatch_ingest_sparkplug_seq_gaps_total") == 1
        assert ingest.stop() == 0, ingest.log()
    finally:
        watcher.disconnect()
        watcher.loop_stop()
