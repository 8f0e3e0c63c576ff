"""What alerting needs from the plant registry: areas, sensor kinds, hazard grades."""

from __future__ import annotations

from dataclasses import dataclass

from common.hazard import HazardGrade, hazard_grade
from common.registry import Registry


@dataclass(frozen=True, slots=True)
class SensorInfo:
    site: str
    unit: str
    area: str
    kind: str | None
    consequence: str | None
    response_time_s: float | None
    interval_s: float = 5.0


class PlantView:
    """Read-only lookups built once from the registry."""

    def __init__(self, registry: Registry | None) -> None:
        self.sensors: dict[str, SensorInfo] = {}
        self.grades: dict[str, HazardGrade] = {}
        self.unit_area: dict[str, str] = {}
        self.unit_site: dict[str, str] = {}
        self.maintenance_units: frozenset[str] = frozenset()
        self.site_names: dict[str, str] = {}
        if registry is None:
            return
        maintenance = set()
        for site in registry.plant.sites:
            self.site_names[site.id] = site.name
            for unit in site.units:
                area = unit.area or unit.id
                self.unit_area[unit.id] = area
                self.unit_site[unit.id] = site.id
                self.grades[unit.id] = hazard_grade(
                    ((i.substance, i.quantity_t) for i in unit.inventories), site.people_exposed
                )
                if unit.maintenance:
                    maintenance.add(unit.id)
                for s in unit.sensors:
                    self.sensors[s.id] = SensorInfo(
                        site.id,
                        unit.id,
                        area,
                        s.kind,
                        s.consequence,
                        s.response_time_s,
                        s.interval_s,
                    )
        self.maintenance_units = frozenset(maintenance)

    def grade(self, unit: str) -> int | None:
        """GB 18218 grade of a unit (1 most severe), None if not a major hazard."""
        found = self.grades.get(unit)
        return found.grade if found else None

    def area(self, unit: str) -> str:
        """The console/area a unit's alarms are presented on."""
        return self.unit_area.get(unit, unit)

    def kind(self, sensor: str) -> str | None:
        info = self.sensors.get(sensor)
        return info.kind if info else None
