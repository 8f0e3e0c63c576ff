"""The sensors the bridge accepts: the registry's, plus auto-registered ones (opt-in).

The parser looks a sensor up once per reading, so this is a flat dict of small
slotted records rather than walks through the pydantic registry models.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from common.registry import Registry
from ingest import metrics
from ingest.units import Conversion, UnitError, conversion

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SensorInfo:
    """What validation needs to know about one sensor."""

    id: str
    site: str
    unit: str
    eng_unit: str | None  # None for auto-registered sensors: no unit is known
    substance: str | None
    lo: float
    hi: float
    auto: bool = False
    # payload unit -> conversion into eng_unit (or the UnitError to raise)
    conversions: dict[str, Conversion | UnitError] = field(default_factory=dict)

    def convert(self, value: float, unit: str) -> float:
        """``value`` given in ``unit``, in this sensor's engineering unit."""
        if unit == self.eng_unit or self.eng_unit is None:
            return value
        conv = self.conversions.get(unit)
        if conv is None:
            try:
                conv = conversion(unit, self.eng_unit, self.substance)
            except UnitError as exc:
                conv = exc
            if len(self.conversions) < 64:  # bounded: payload units are attacker-chosen
                self.conversions[unit] = conv
        if isinstance(conv, UnitError):
            raise conv
        return conv.apply(value)


@dataclass(frozen=True, slots=True)
class UnitIndex:
    """The registry sensors of one site/unit as arrays, for whole-batch validation.

    ``position[sensor_id]`` indexes ``lo`` / ``hi`` (the physical range). Only
    registry sensors with a finite range are here: any other sensor sends its batch
    down the entry-by-entry path (which flags an auto-registered one's readings
    uncertain).
    """

    position: dict[str, int]
    lo: np.ndarray
    hi: np.ndarray


class SensorTable:
    """Lookup of sensors by id; grows by auto-registration when that is enabled."""

    def __init__(self, registry: Registry, *, auto_register: bool = False) -> None:
        self.auto_register = auto_register
        self._by_id: dict[str, SensorInfo] = {}
        self.units = set(registry.units)
        for ref in registry:
            s = ref.sensor
            self._by_id[s.id] = SensorInfo(
                s.id, ref.site.id, ref.unit.id, s.unit, s.substance, s.range[0], s.range[1]
            )
        self._unit_index = _unit_indexes(self._by_id.values())

    def unit_index(self, site: str, unit: str) -> UnitIndex | None:
        """The registry sensors of ``site``/``unit`` (None if it has none)."""
        return self._unit_index.get((site, unit))

    def get(self, sensor_id: str) -> SensorInfo | None:
        """The sensor with this id, or None."""
        return self._by_id.get(sensor_id)

    def register(self, sensor_id: str, site: str, unit: str) -> SensorInfo:
        """Add an unknown sensor with defaults (no unit, unbounded range), flagged ``auto``."""
        info = SensorInfo(sensor_id, site, unit, None, None, -math.inf, math.inf, auto=True)
        self._by_id[sensor_id] = info
        metrics.AUTO_REGISTERED.inc()
        log.warning(
            "auto-registered unknown sensor %s on %s/%s: readings flagged uncertain; "
            "add it to the plant registry",
            sensor_id,
            site,
            unit,
        )
        return info

    def by_unit(self, unit: str) -> list[SensorInfo]:
        """Every known sensor of a unit."""
        return [s for s in self._by_id.values() if s.unit == unit]


def _unit_indexes(infos: Iterable[SensorInfo]) -> dict[tuple[str, str], UnitIndex]:
    by_unit: dict[tuple[str, str], list[SensorInfo]] = {}
    for info in infos:
        # a range open to infinity would let an infinite value through the array
        # checks: such a sensor's batches take the entry-by-entry path
        if math.isfinite(info.lo) and math.isfinite(info.hi):
            by_unit.setdefault((info.site, info.unit), []).append(info)
    return {
        key: UnitIndex(
            {s.id: i for i, s in enumerate(members)},
            np.array([s.lo for s in members], np.float64),
            np.array([s.hi for s in members], np.float64),
        )
        for key, members in by_unit.items()
    }
