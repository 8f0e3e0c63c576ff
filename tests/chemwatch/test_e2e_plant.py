"""The benchmark's generated plant: load sensors the generator publishes, probes that alarm."""

from __future__ import annotations

from pathlib import Path

import pytest

from chemwatch.e2e.plant import PROBE_HIGH, PROBE_OFF, PROBE_ON, probe_id, write_plant
from common.errors import ConfigError
from common.registry import load_registry
from simulators.load import sensor_id, unit_id


def test_the_plant_holds_every_load_sensor_and_the_probes(tmp_path: Path) -> None:
    registry = load_registry(write_plant(tmp_path / "plant.json", sensors=250, probes=4))
    ids = {r.sensor.id for r in registry}
    assert {sensor_id(k) for k in range(250)} <= ids
    assert {probe_id(k) for k in range(4)} <= ids
    assert len(ids) == 254
    units = {r.sensor.id: r.unit.id for r in registry}
    assert units[sensor_id(249)] == unit_id(249)


def test_probes_cross_their_limit_and_load_sensors_have_none(tmp_path: Path) -> None:
    registry = load_registry(write_plant(tmp_path / "plant.json", sensors=10, probes=2))
    probe = next(r.sensor for r in registry if r.sensor.id == probe_id(0))
    assert probe.limits.h == PROBE_HIGH
    assert PROBE_OFF < PROBE_HIGH < PROBE_ON
    load = next(r.sensor for r in registry if r.sensor.id == sensor_id(0))
    assert (load.limits.h, load.limits.hh, load.limits.l, load.limits.ll) == (None,) * 4
    assert load.detection.drift is False


def test_a_broken_json_plant_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "plant.json"
    path.write_text('{"name": "x", "sites": [')
    with pytest.raises(ConfigError, match=r"plant\.json.*not valid JSON"):
        load_registry(path)
