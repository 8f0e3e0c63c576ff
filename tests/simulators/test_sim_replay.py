"""Replay of a CSV dataset: parsing, mapping, labels, and publishing over MQTT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from common.errors import ConfigError
from common.registry import load_registry
from common.settings import BaseProcessSettings
from simulators.replay import label_events, parse_map, read_csv
from simulators.truth import read_truth
from tests.fixtures.processes import wait_until
from tests.fixtures.services import ROOT, Isolation

REGISTRY = load_registry(ROOT / "examples" / "plant.yaml")
CSV = """datetime;Pressure;Thermocouple;anomaly
2020-03-01 15:44:06;0.38;26.8;0.0
2020-03-01 15:44:07;0.05;26.9;0.0
2020-03-01 15:44:09;0.71;27.0;1.0
2020-03-01 15:44:10;0.71;27.1;1.0
2020-03-01 15:44:11;0.38;27.0;0.0
"""


def test_reads_semicolon_csv_and_maps_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(CSV)
    times, cols = read_csv(path, None)
    assert list(times - times[0]) == [0, 1, 3, 4, 5]  # gaps are kept
    assert set(cols) == {"Pressure", "Thermocouple", "anomaly"}
    col, idx, scale, offset = parse_map("Pressure=LD301-PT-01*2+10", REGISTRY)
    assert (col, REGISTRY.sensors[idx].sensor.id, scale, offset) == ("Pressure", "LD301-PT-01",
                                                                       2.0, 10.0)  # fmt: skip
    with pytest.raises(ConfigError, match="unknown sensor"):
        parse_map("Pressure=NOPE", REGISTRY)
    events = label_events(times, cols["anomaly"], ["LD301-PT-01"], 0, times[0])
    assert [(e["start"], e["end"]) for e in events] == [
        ("1970-01-01T00:00:03.000+00:00", "1970-01-01T00:00:04.000+00:00")
    ]


@pytest.mark.integration
def test_replay_publishes_every_mapped_value(
    stack: BaseProcessSettings, isolation: Isolation, tmp_path: Path
) -> None:
    path, truth = tmp_path / "d.csv", tmp_path / "truth.jsonl"
    path.write_text(CSV)
    got: list[tuple[str, dict]] = []
    lock = threading.Lock()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            got.append((msg.topic, json.loads(msg.payload)))

    sub.on_message = on_message
    sub.connect(stack.mqtt.host, stack.mqtt.port)
    sub.subscribe(f"{isolation.mqtt_prefix}/#", qos=1)
    sub.loop_start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHEMWATCH_")}
        env |= isolation.env
        out = subprocess.run(
            [sys.executable, "-m", "chemwatch", "replay", "--csv", str(path), "--speed", "5",
             "--map", "Pressure=LD301-PT-01*2+10", "--map", "Thermocouple=TK101-TT-01",
             "--label-column", "anomaly", "--truth", str(truth)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        wait_until(lambda: len(got) >= 10, 10, "10 readings over MQTT")
    finally:
        sub.disconnect()
        sub.loop_stop()
    pressure = [p["value"] for t, p in got if t.endswith("/LD301-PT-01")]
    assert pressure == pytest.approx([10.76, 10.1, 11.42, 11.42, 10.76])
    _header, events = read_truth(truth)
    assert len(events) == 1


SKAB = ROOT.parent / "shared" / "datasets" / "skab" / "data" / "other" / "1.csv"


@pytest.mark.skipif(not SKAB.exists(), reason="SKAB dataset not present next to the repo")
def test_reads_the_skab_file_as_its_readme_describes() -> None:
    times, cols = read_csv(SKAB, None)
    assert len(times) == 745
    assert {"Pressure", "Volume Flow RateRMS", "anomaly", "changepoint"} <= set(cols)
    (event,) = label_events(times, cols["anomaly"], ["LD301-PT-01"], 0, times[0])
    first = int(np.flatnonzero(cols["anomaly"] > 0.5)[0])
    assert first == 557  # first anomalous row, per the dataset README
    assert int(cols["anomaly"].sum()) == 188
    assert event["start"] == label_events(times[first:], cols["anomaly"][first:], [], 0,
                                          times[0])[0]["start"]  # fmt: skip
