"""Scenarios: a YAML timeline of process hazards, sensor faults and operations.

Example (see examples/scenarios/)::

    name: propane leak at TK-101
    duration: 30m
    weather: {wind_speed_m_s: 2, wind_from_deg: 200}
    events:
      - {kind: leak, unit: TK101, start: 5m, duration: 10m, rate_kg_s: 0.2}
      - {kind: stuck, sensors: [TK101-PT-02], start: 2m, duration: 15m}

Times are seconds of simulated time from the start of the run, or strings with a
unit (``90s``, ``5m``, ``2h``). Validated on load against the plant registry; errors
name the file, the event and the problem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.errors import ConfigError
from common.registry import Registry
from simulators.ambient import Weather

HAZARDS = frozenset(
    {"leak", "loss_of_cooling", "runaway", "overfill", "overpressure", "fire", "force"}
)
FAULTS = frozenset(
    {
        "stuck", "drift", "spike", "dropout", "offset", "noisy", "clock_skew",
        "gateway_offline", "duplicate", "out_of_order", "malformed",
    }
)  # fmt: skip
OPERATIONS = frozenset({"transfer"})
Kind = Literal[
    "leak", "loss_of_cooling", "runaway", "overfill", "overpressure", "fire", "force",
    "stuck", "drift", "spike", "dropout", "offset", "noisy", "clock_skew",
    "gateway_offline", "duplicate", "out_of_order", "malformed", "transfer",
]  # fmt: skip
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_S = {None: 1.0, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}

# Kinds that act on a unit, and kinds that act on listed sensors.
UNIT_KINDS = frozenset(
    {"leak", "loss_of_cooling", "runaway", "overfill", "overpressure", "fire",
     "gateway_offline", "transfer"}
)  # fmt: skip


def seconds(value: Any) -> Any:
    """``90``, ``"90s"``, ``"5m"``, ``"2h"`` -> seconds (other input left to validation)."""
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return float(m[1]) * _UNIT_S[m[2]]
    return value


class Event(BaseModel):
    """One timeline entry; only the parameters of its kind are used."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    id: str = ""
    start: float = Field(ge=0)
    duration: float = Field(gt=0)
    unit: str | None = None
    sensors: tuple[str, ...] = ()
    # hazards
    rate_kg_s: float = Field(default=0.3, gt=0)  # leak
    at_m: tuple[float, float] | None = None  # leak source; default: centre of the unit
    substance: str | None = None  # leak; default: the unit's first inventory
    flow: float = Field(default=0.0, ge=0, le=1)  # loss_of_cooling: remaining flow fraction
    charge_k: float = Field(default=60.0, gt=0)  # runaway: overcharge as adiabatic rise
    rate_t_h: float = 150.0  # overfill / transfer (negative = out)
    rate_bar_min: float = Field(default=0.5, gt=0)  # overpressure: non-condensables
    heat_kw: float = Field(default=8000.0, gt=0)  # fire
    value: float | None = None  # force: hold the sensors at this value
    # faults
    rate_per_h: float = 5.0  # drift, engineering units per hour
    magnitude: float = 10.0  # spike / offset, engineering units
    factor: float = Field(default=8.0, gt=1)  # noisy: noise multiplied by
    skew_s: float = 120.0  # clock_skew: timestamps shifted by
    hold_s: float = Field(default=5.0, gt=0)  # out_of_order: readings held back by
    buffer: bool = False  # gateway_offline: store and forward when back

    _times = field_validator("start", "duration", "hold_s", "skew_s", mode="before")(seconds)

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def category(self) -> str:
        if self.kind in HAZARDS:
            return "hazard"
        return "fault" if self.kind in FAULTS else "operation"

    def active(self, t: float) -> bool:
        return self.start <= t < self.end


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    duration: float | None = Field(default=None, gt=0)
    weather: Weather = Weather()
    events: tuple[Event, ...] = ()

    _times = field_validator("duration", mode="before")(seconds)


def check_events(events: tuple[Event, ...], registry: Registry, source: str) -> tuple[Event, ...]:
    """Validate references against the registry; give every event a unique id."""
    out = []
    for i, ev in enumerate(events):
        where = f"events[{i}]"
        if ev.kind in UNIT_KINDS:
            if ev.unit is None or ev.unit not in registry.units:
                raise ConfigError(source, where + ".unit", f"{ev.kind} needs a known unit")
            _site, unit = registry.units[ev.unit]
            if ev.kind in ("loss_of_cooling", "runaway") and unit.kind != "reactor":
                raise ConfigError(source, where + ".unit", f"{ev.unit} is not a reactor")
        elif not ev.sensors:
            raise ConfigError(source, where + ".sensors", f"{ev.kind} needs sensors")
        for sid in ev.sensors:
            if registry.sensor(sid) is None:
                raise ConfigError(source, where + ".sensors", f"unknown sensor {sid!r}")
        if ev.kind == "force" and ev.value is None:
            raise ConfigError(source, where + ".value", "force needs a value")
        out.append(ev.model_copy(update={"id": ev.id or f"{i:02d}-{ev.kind}"}))
    ids = [e.id for e in out]
    if len(set(ids)) != len(ids):
        raise ConfigError(source, "events", "event ids must be unique")
    return tuple(out)


def load_scenario(path: Path | str, registry: Registry) -> Scenario:
    """Read and validate a scenario file against the plant registry."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read scenario: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"not valid YAML: {exc}") from exc
    return parse_scenario(raw, registry, str(path))


def parse_scenario(raw: Any, registry: Registry, source: str = "<scenario>") -> Scenario:
    """Validate an already-parsed scenario document."""
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "top level must be a mapping with 'name' and 'events'")
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(source, loc, str(err["msg"]).removeprefix("Value error, ")) from exc
    events = check_events(scenario.events, registry, source)
    return scenario.model_copy(update={"events": events})
