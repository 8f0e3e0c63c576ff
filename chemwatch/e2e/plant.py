"""The benchmark's plant: the simulator's load sensors plus a few latency probes.

Load sensors are the ids ``chemwatch loadgen`` publishes (``LOAD-000000`` ..., units of
100). They are flow sensors whose detectors all run (every reading goes through the
vectorised suite) but whose settings never fire on the generator's saw-tooth values:
no limits, drift off, spike and stuck checks out of reach, and a long reporting
interval so the gaps between steps are not taken for silence. The pipeline then does
the work of a plant where nearly every reading is normal.

Probe sensors (``PROBE-000`` ..., site ``e2e-probe``) have one high limit and nothing
else: a probe value above it raises exactly one condition and one alarm.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulators.load import PER_UNIT, SITE, sensor_id, unit_id

PROBE_SITE = "e2e-probe"
PROBE_UNIT = "PROBE"
PROBE_HIGH = 80.0  # the probes' H limit
PROBE_ON = 95.0  # a value that raises it
PROBE_OFF = 10.0  # a value that clears it
QUIET_INTERVAL_S = 600.0  # reporting interval: steps minutes apart are not "stale"
NEVER = 1e9


def probe_id(k: int) -> str:
    return f"PROBE-{k:03d}"


def _load_sensor(k: int) -> dict[str, Any]:
    return {
        "id": sensor_id(k),
        "kind": "flow",
        "unit": "m3/h",
        "range": [0, 100],
        "interval_s": QUIET_INTERVAL_S,
        "detection": {"drift": False, "spike_fraction": 2.0, "stuck_s": NEVER},
    }


def _probe_sensor(k: int) -> dict[str, Any]:
    return {
        "id": probe_id(k),
        "kind": "pressure",
        "unit": "bar(g)",
        "range": [0, 100],
        "interval_s": 3600.0,
        "limits": {"h": PROBE_HIGH},
        "detection": {
            "drift": False,
            "spike_fraction": 2.0,
            "stuck_s": NEVER,
            "rate_limit_per_min": NEVER,
        },
    }


def plant_document(sensors: int, probes: int) -> dict[str, Any]:
    """The registry document for ``sensors`` load sensors and ``probes`` probes."""
    units = [
        {
            "id": unit_id(u),
            "name": f"load unit {u // PER_UNIT}",
            "kind": "process_unit",
            "sensors": [_load_sensor(k) for k in range(u, min(u + PER_UNIT, sensors))],
        }
        for u in range(0, sensors, PER_UNIT)
    ]
    probe_unit = {
        "id": PROBE_UNIT,
        "name": "latency probes",
        "kind": "process_unit",
        "sensors": [_probe_sensor(k) for k in range(probes)],
    }
    site = {"id": SITE, "name": "load", "enterprise": "-", "region": "-", "units": units}
    probe_site = {
        "id": PROBE_SITE,
        "name": "probes",
        "enterprise": "-",
        "region": "-",
        "units": [probe_unit],
    }
    return {"name": f"e2e bench plant ({sensors} sensors)", "sites": [site, probe_site]}


def write_plant(path: Path, sensors: int, probes: int) -> Path:
    """Write the registry as JSON (which is YAML too): 100k sensors dump in a blink."""
    path.write_text(json.dumps(plant_document(sensors, probes)))
    return path
