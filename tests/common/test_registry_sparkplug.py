"""Optional Sparkplug mapping in the registry: defaults, and clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from common.errors import ConfigError
from common.registry import parse_registry

ROOT = Path(__file__).resolve().parents[2]


def plant() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "examples" / "plant.yaml").read_text()))


def test_example_maps_one_device_and_one_node() -> None:
    registry = parse_registry(plant())
    tk101 = registry.units["TK101"][1]
    assert tk101.sparkplug is not None
    assert (tk101.sparkplug.group, tk101.sparkplug.edge_node, tk101.sparkplug.device) == (
        "haibin",
        "lpg-farm-rtu",
        "TK101",
    )
    assert registry.units["TK102"][1].sparkplug.device is None  # type: ignore[union-attr]
    assert registry.sensor("TK101-PT-01").sensor.sparkplug_metric is None  # type: ignore[union-attr]
    assert registry.units["R501"][1].sparkplug is None  # optional


def test_a_source_mapped_twice_is_an_error() -> None:
    doc = plant()
    units = doc["sites"][0]["units"]
    units[1]["sparkplug"] = dict(units[0]["sparkplug"])
    with pytest.raises(ConfigError, match=r"sites\[0\]\.units\[1\]\.sparkplug.*also mapped"):
        parse_registry(doc)


def test_two_sensors_on_one_metric_is_an_error() -> None:
    doc = plant()
    sensors = doc["sites"][0]["units"][0]["sensors"]
    sensors[1]["sparkplug_metric"] = sensors[0]["id"]
    with pytest.raises(ConfigError, match="used by two sensors"):
        parse_registry(doc)


def test_topic_characters_are_refused() -> None:
    doc = plant()
    doc["sites"][0]["units"][0]["sparkplug"]["group"] = "a/b"
    with pytest.raises(ConfigError, match=r"sparkplug\.group"):
        parse_registry(doc)
