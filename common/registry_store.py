"""Mirror the plant registry (YAML) into the sites, units and sensors tables.

Idempotent upserts: a row changes (and its ``updated_at`` moves) only when the YAML
changed it. Whatever left the YAML is marked inactive, never deleted, so readings and
alarms that name it keep their meaning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg

from common.registry import Registry


@dataclass(frozen=True, slots=True)
class SyncResult:
    """Rows inserted or changed, and rows newly marked inactive, per table."""

    changed: dict[str, int]
    deactivated: dict[str, int]


_SITES = (
    "INSERT INTO sites AS t (site_id, name, enterprise, region, people_exposed, active)"
    " VALUES (%s, %s, %s, %s, %s, true)"
    " ON CONFLICT (site_id) DO UPDATE SET name = EXCLUDED.name,"
    " enterprise = EXCLUDED.enterprise, region = EXCLUDED.region,"
    " people_exposed = EXCLUDED.people_exposed, active = true, updated_at = now()"
    " WHERE (t.name, t.enterprise, t.region, t.people_exposed, t.active)"
    " IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.enterprise, EXCLUDED.region,"
    " EXCLUDED.people_exposed, true)"
)
_UNITS = (
    "INSERT INTO units AS t (unit_id, site_id, name, kind, area, inventories,"
    " relief_set_pressure_barg, active)"
    " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, true)"
    " ON CONFLICT (unit_id) DO UPDATE SET site_id = EXCLUDED.site_id, name = EXCLUDED.name,"
    " kind = EXCLUDED.kind, area = EXCLUDED.area, inventories = EXCLUDED.inventories,"
    " relief_set_pressure_barg = EXCLUDED.relief_set_pressure_barg, active = true,"
    " updated_at = now()"
    " WHERE (t.site_id, t.name, t.kind, t.area, t.inventories, t.relief_set_pressure_barg,"
    " t.active) IS DISTINCT FROM (EXCLUDED.site_id, EXCLUDED.name, EXCLUDED.kind,"
    " EXCLUDED.area, EXCLUDED.inventories, EXCLUDED.relief_set_pressure_barg, true)"
)
_SENSOR_COLUMNS = (
    "unit_id",
    "site_id",
    "kind",
    "substance",
    "eng_unit",
    "range_low",
    "range_high",
    "limit_ll",
    "limit_l",
    "limit_h",
    "limit_hh",
    "deadband",
    "interval_s",
    "description",
)
_SENSORS = (
    f"INSERT INTO sensors AS t (sensor_id, {', '.join(_SENSOR_COLUMNS)}, active)"
    f" VALUES (%s, {', '.join(['%s'] * len(_SENSOR_COLUMNS))}, true)"
    " ON CONFLICT (sensor_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _SENSOR_COLUMNS)
    + ", active = true, updated_at = now()"
    f" WHERE ({', '.join('t.' + c for c in _SENSOR_COLUMNS)}, t.active)"
    f" IS DISTINCT FROM ({', '.join('EXCLUDED.' + c for c in _SENSOR_COLUMNS)}, true)"
)


def registry_rows(registry: Registry) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of sites, units and sensors that the registry describes."""
    sites, units, sensors = [], [], []
    for site in registry.plant.sites:
        sites.append((site.id, site.name, site.enterprise, site.region, site.people_exposed))
        for unit in site.units:
            inventories = [inv.model_dump() for inv in unit.inventories]
            units.append(
                (
                    unit.id,
                    site.id,
                    unit.name,
                    unit.kind,
                    unit.area,
                    json.dumps(inventories),
                    unit.relief_set_pressure_barg,
                )
            )
            for s in unit.sensors:
                lim = s.limits
                sensors.append(
                    (
                        s.id,
                        unit.id,
                        site.id,
                        s.kind,
                        s.substance,
                        s.unit,
                        s.range[0],
                        s.range[1],
                        lim.ll,
                        lim.l,
                        lim.h,
                        lim.hh,
                        lim.deadband,
                        s.interval_s,
                        s.description,
                    )
                )
    return {"sites": sites, "units": units, "sensors": sensors}


def sync_registry(conn: psycopg.Connection[Any], registry: Registry) -> SyncResult:
    """Upsert the registry and deactivate what it no longer has, in one transaction."""
    rows = registry_rows(registry)
    changed: dict[str, int] = {}
    deactivated: dict[str, int] = {}
    with conn.transaction(), conn.cursor() as cur:
        for table, statement in (("sites", _SITES), ("units", _UNITS), ("sensors", _SENSORS)):
            cur.executemany(statement + " RETURNING 1", rows[table], returning=True)
            count = 0
            while True:  # one result per row; a row is returned only when it changed
                count += len(cur.fetchall())
                if not cur.nextset():
                    break
            changed[table] = count
        for table, key in (("sensors", "sensor_id"), ("units", "unit_id"), ("sites", "site_id")):
            ids = [r[0] for r in rows[table]]
            cur.execute(
                f"UPDATE {table} SET active = false, updated_at = now()"
                f" WHERE active AND NOT ({key} = ANY(%s))",
                (ids,),
            )
            deactivated[table] = cur.rowcount
    return SyncResult(changed, deactivated)
