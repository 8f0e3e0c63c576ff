"""The plant registry: sites -> units -> sensors, loaded from one YAML file.

The registry is the single source of truth for what exists in the plant. It is
validated on load; every error names the file, the key path inside it and the
problem, e.g. ``plant.yaml: sites[0].units[2].sensors[4].limits.hh: must be above h``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.errors import ConfigError
from common.substances import SUBSTANCES

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Id = Annotated[str, Field(pattern=ID_PATTERN)]

SensorKind = Literal["gas", "temperature", "pressure", "level", "flow"]

ENGINEERING_UNITS: dict[str, frozenset[str]] = {
    "gas": frozenset({"%LEL", "ppm", "mg/m3", "%vol"}),
    "temperature": frozenset({"degC", "K", "degF"}),
    "pressure": frozenset({"kPa", "bar(g)", "bar", "MPa", "psi"}),
    "level": frozenset({"%", "m"}),
    "flow": frozenset({"m3/h", "t/h", "kg/s"}),
}

# Default reporting interval when a sensor does not declare one, seconds.
DEFAULT_INTERVAL_S = 5.0


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limits(_Model):
    """ISA-18.2 alarm limits with deadband and delays (absent limit = not configured)."""

    ll: float | None = None
    l: float | None = None  # noqa: E741 - ISA-18.2 name for the low limit
    h: float | None = None
    hh: float | None = None
    deadband: float = Field(default=0.0, ge=0)
    on_delay_s: float = Field(default=0.0, ge=0)
    off_delay_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        order = [("ll", self.ll), ("l", self.l), ("h", self.h), ("hh", self.hh)]
        present = [(name, v) for name, v in order if v is not None]
        for (lo_name, lo), (hi_name, hi) in pairwise(present):
            if not lo < hi:
                raise ValueError(f"{hi_name} ({hi}) must be above {lo_name} ({lo})")
        return self


class Detection(_Model):
    """Optional per-sensor detector tuning; None = the detectors' default for the kind.

    Defaults live with the detectors (detectors/config.py, documented in docs/detectors.md).
    """

    rate_limit_per_min: float | None = Field(default=None, gt=0)  # ROC_HIGH, units/min
    rate_window_s: float | None = Field(default=None, gt=0)
    drift: bool | None = None  # EWMA/CUSUM on a learnt baseline
    spike_fraction: float | None = Field(default=None, gt=0)  # of span, between readings
    stuck_s: float | None = Field(default=None, gt=0)
    stale_factor: float | None = Field(default=None, gt=1)  # x interval_s
    stel: float | None = Field(default=None, gt=0)  # 15-min average limit, sensor units
    twa: float | None = Field(default=None, gt=0)  # 8-h average limit, sensor units
    redundancy_group: str | None = None  # sensors measuring the same thing (voting)


class Sensor(_Model):
    id: Id
    kind: SensorKind
    unit: str
    range: tuple[float, float]
    substance: str | None = None
    limits: Limits = Limits()
    interval_s: float = Field(default=DEFAULT_INTERVAL_S, gt=0)
    position_m: tuple[float, float] | None = None
    description: str = ""
    # Sparkplug B metric name that carries this sensor (default: the sensor id).
    sparkplug_metric: str | None = None
    # Alarm rationalisation (ISA-18.2): consequence of not acting and the time the
    # operator has to act; alerting derives the alarm priority from them when present.
    consequence: Literal["minor", "moderate", "major", "severe"] | None = None
    response_time_s: float | None = Field(default=None, gt=0)
    detection: Detection = Detection()

    @model_validator(mode="after")
    def _consistent(self) -> Sensor:
        allowed = ENGINEERING_UNITS[self.kind]
        if self.unit not in allowed:
            raise ValueError(
                f"unit {self.unit!r} is not a {self.kind} unit (use one of {sorted(allowed)})"
            )
        lo, hi = self.range
        if not lo < hi:
            raise ValueError(f"range low ({lo}) must be below range high ({hi})")
        if self.kind == "gas" and self.substance is None:
            raise ValueError("a gas sensor must name the substance it measures")
        if self.substance is not None and self.substance not in SUBSTANCES:
            raise ValueError(f"unknown substance {self.substance!r}")
        for name in ("ll", "l", "h", "hh"):
            value = getattr(self.limits, name)
            if value is not None and not lo <= value <= hi:
                raise ValueError(f"limit {name} ({value}) lies outside the range [{lo}, {hi}]")
        return self


class Inventory(_Model):
    substance: str
    quantity_t: float = Field(ge=0)

    @model_validator(mode="after")
    def _known(self) -> Inventory:
        if self.substance not in SUBSTANCES:
            raise ValueError(f"unknown substance {self.substance!r}")
        return self


class SparkplugSource(_Model):
    """Where a unit's sensors arrive over Sparkplug B: group / edge node [/ device]."""

    group: str = Field(min_length=1, pattern=r"^[^/+#]+$")
    edge_node: str = Field(min_length=1, pattern=r"^[^/+#]+$")
    device: str | None = Field(default=None, min_length=1, pattern=r"^[^/+#]+$")


class Unit(_Model):
    id: Id
    name: str
    kind: Literal["storage_tank", "reactor", "storage_area", "process_unit", "warehouse"]
    area: str = ""
    inventories: tuple[Inventory, ...] = ()
    relief_set_pressure_barg: float | None = None
    sparkplug: SparkplugSource | None = None
    # Maintenance mode at start-up: its alarms are suppressed by design (alerting).
    maintenance: bool = False
    sensors: tuple[Sensor, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_metrics(self) -> Unit:
        seen: set[str] = set()
        for sensor in self.sensors:
            metric = sensor.sparkplug_metric or sensor.id
            if metric in seen:
                raise ValueError(f"Sparkplug metric {metric!r} is used by two sensors")
            seen.add(metric)
        return self


class Site(_Model):
    id: Id
    name: str
    enterprise: str
    region: str
    people_exposed: int = Field(default=0, ge=0)
    units: tuple[Unit, ...] = Field(min_length=1)


class Plant(_Model):
    name: str
    sites: tuple[Site, ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class SensorRef:
    """A sensor with its place in the plant and its dense index."""

    index: int
    site: Site
    unit: Unit
    sensor: Sensor


class Registry:
    """A validated plant with lookups and dense per-sensor arrays for the hot path."""

    def __init__(self, plant: Plant, source: str = "<registry>") -> None:
        self.plant = plant
        self.source = source
        refs: list[SensorRef] = []
        for site in plant.sites:
            for unit in site.units:
                for sensor in unit.sensors:
                    refs.append(SensorRef(len(refs), site, unit, sensor))
        self.sensors: tuple[SensorRef, ...] = tuple(refs)
        self._by_id = {r.sensor.id: r for r in refs}
        self.units: dict[str, tuple[Site, Unit]] = {
            u.id: (s, u) for s in plant.sites for u in s.units
        }

    def __len__(self) -> int:
        return len(self.sensors)

    def __iter__(self) -> Iterator[SensorRef]:
        return iter(self.sensors)

    def sensor(self, sensor_id: str) -> SensorRef | None:
        """The sensor with this id, or None when the plant has no such sensor."""
        return self._by_id.get(sensor_id)

    @cached_property
    def sensor_ids(self) -> np.ndarray:
        """Sensor ids in dense-index order (object array of str)."""
        return np.array([r.sensor.id for r in self.sensors], dtype=object)

    @cached_property
    def unit_ids(self) -> np.ndarray:
        """Unit id of each sensor in dense-index order."""
        return np.array([r.unit.id for r in self.sensors], dtype=object)

    def limit_array(self, name: str) -> np.ndarray:
        """One limit (``ll``, ``l``, ``h``, ``hh``) per sensor; NaN where not configured."""
        return np.array(
            [np.nan if (v := getattr(r.sensor.limits, name)) is None else v for r in self.sensors],
            dtype=np.float64,
        )

    def deadband_array(self) -> np.ndarray:
        return np.array([r.sensor.limits.deadband for r in self.sensors], dtype=np.float64)

    def range_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Physical range (low, high) per sensor."""
        lo = np.array([r.sensor.range[0] for r in self.sensors], dtype=np.float64)
        hi = np.array([r.sensor.range[1] for r in self.sensors], dtype=np.float64)
        return lo, hi

    def indices(self, sensor_ids: np.ndarray) -> np.ndarray:
        """Dense indices for an array of sensor ids; -1 for ids the plant does not have."""
        lookup = {sid: i for i, sid in enumerate(self.sensor_ids)}
        return np.fromiter((lookup.get(s, -1) for s in sensor_ids), np.int64, len(sensor_ids))


def load_registry(path: Path | str) -> Registry:
    """Load and validate a plant YAML (or .json) file; raise ConfigError naming file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":  # generated plants (benchmarks): parsed 100x faster
            raw = json.loads(text)
        else:
            # libyaml's C loader when present: the pure-Python one is slow for big plants
            raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), "", f"not valid JSON: {exc}") from exc
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read plant registry: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"not valid YAML: {exc}") from exc
    return parse_registry(raw, str(path))


def parse_registry(raw: Any, source: str = "<registry>") -> Registry:
    """Validate an already-parsed registry document."""
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "top level must be a mapping with 'name' and 'sites'")
    try:
        plant = Plant.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(source, _key_path(err["loc"]), _message(err)) from exc
    _check_unique_ids(plant, source)
    _check_sparkplug(plant, source)
    return Registry(plant, source)


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: Any) -> str:
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key (typo?)"
    if err["type"] == "missing":
        return "required key is missing"
    return msg


def _check_unique_ids(plant: Plant, source: str) -> None:
    seen: dict[str, str] = {}
    for si, site in enumerate(plant.sites):
        _claim(seen, f"site:{site.id}", f"sites[{si}].id", source)
        for ui, unit in enumerate(site.units):
            _claim(seen, f"unit:{unit.id}", f"sites[{si}].units[{ui}].id", source)
            for ni, sensor in enumerate(unit.sensors):
                key = f"sites[{si}].units[{ui}].sensors[{ni}].id"
                _claim(seen, f"sensor:{sensor.id}", key, source)


def _check_sparkplug(plant: Plant, source: str) -> None:
    seen: dict[tuple[str, str, str | None], str] = {}
    for si, site in enumerate(plant.sites):
        for ui, unit in enumerate(site.units):
            if unit.sparkplug is None:
                continue
            sp = unit.sparkplug
            where = (sp.group, sp.edge_node, sp.device)
            key = f"sites[{si}].units[{ui}].sparkplug"
            if where in seen:
                raise ConfigError(
                    source,
                    key,
                    f"Sparkplug source {'/'.join(filter(None, where))} is also "
                    f"mapped at {seen[where]}",
                )
            seen[where] = key


def _claim(seen: dict[str, str], name: str, key: str, source: str) -> None:
    if name in seen:
        kind, ident = name.split(":", 1)
        raise ConfigError(source, key, f"duplicate {kind} id {ident!r} (first at {seen[name]})")
    seen[name] = key
