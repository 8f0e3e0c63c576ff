"""`chemwatch registry sync`: idempotent upserts; what leaves the YAML becomes inactive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from common.registry import load_registry, parse_registry
from common.registry_store import sync_registry
from tests.fixtures.services import ROOT, Isolation

pytestmark = pytest.mark.integration
PLANT = ROOT / "examples" / "plant.yaml"


def counts(db: psycopg.Connection) -> dict[str, tuple[int, int]]:
    out = {}
    for table in ("sites", "units", "sensors"):
        out[table] = db.execute(
            "SELECT count(*) FILTER (WHERE active), count(*) FILTER (WHERE NOT active)"
            f" FROM {table}"
        ).fetchone()
    return out


def test_sync_is_idempotent_and_deactivates_removed_sensors(db: psycopg.Connection) -> None:
    registry = load_registry(PLANT)
    n_sites, n_units = len(registry.plant.sites), len(registry.units)
    first = sync_registry(db, registry)
    assert first.changed == {"sites": n_sites, "units": n_units, "sensors": len(registry)}
    assert counts(db) == {
        "sites": (n_sites, 0),
        "units": (n_units, 0),
        "sensors": (len(registry), 0),
    }
    again = sync_registry(db, registry)
    assert again.changed == {"sites": 0, "units": 0, "sensors": 0}
    assert again.deactivated == {"sites": 0, "units": 0, "sensors": 0}

    # Drop the first unit's last sensor and change a limit of its first one.
    raw = yaml.safe_load(PLANT.read_text(encoding="utf-8"))
    unit = raw["sites"][0]["units"][0]
    removed = unit["sensors"].pop()["id"]
    changed = unit["sensors"][0]
    changed["limits"]["hh"] = changed["limits"]["hh"] - 0.5
    edited = parse_registry(raw, "edited")
    result = sync_registry(db, edited)
    assert result.changed == {"sites": 0, "units": 0, "sensors": 1}
    assert result.deactivated == {"sites": 0, "units": 0, "sensors": 1}
    row = db.execute(
        "SELECT active, limit_hh FROM sensors WHERE sensor_id = %s", (removed,)
    ).fetchone()
    assert row[0] is False
    hh = db.execute("SELECT limit_hh FROM sensors WHERE sensor_id = %s", (changed["id"],))
    assert hh.fetchone()[0] == changed["limits"]["hh"]
    # Back in the YAML: active again.
    assert sync_registry(db, registry).changed["sensors"] == 2
    assert counts(db)["sensors"] == (len(registry), 0)


def test_registry_sync_command(isolation: Isolation, db: psycopg.Connection) -> None:
    env = {**isolation.env, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "chemwatch", "registry", "sync", "--plant", str(PLANT)],
        cwd=Path(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "sensors: 68 inserted or changed, 0 marked inactive" in result.stdout
    assert counts(db)["sensors"] == (68, 0)
