"""The plant physics is plausible: vapour pressure, tank thermal lag, reactor
stability, plume order."""

from __future__ import annotations

import numpy as np
import pytest

from common.registry import load_registry
from simulators.ambient import Weather
from simulators.plant import Simulation
from simulators.plume import plume_kg_m3, to_sensor_units
from simulators.reactor import Reactors
from simulators.scenario import parse_scenario
from simulators.tanks import TankInputs, Tanks
from simulators.thermo import ATM_BAR, psat_bar
from tests.fixtures.services import ROOT

REGISTRY = load_registry(ROOT / "examples" / "plant.yaml")
START_NS = 1_780_000_000 * 10**9  # a fixed simulated clock


@pytest.mark.parametrize(
    ("substance", "t_c", "bar_abs"),
    [("propane", 20, 8.4), ("propane", 40, 13.7), ("ammonia", 20, 8.6), ("chlorine", 20, 6.8),
     ("n-butane", 20, 2.1), ("propane", 0, 4.8)],
)  # fmt: skip
def test_vapour_pressure_matches_the_literature(substance: str, t_c: float, bar_abs: float) -> None:
    assert psat_bar(substance, t_c) == pytest.approx(bar_abs, rel=0.03)


def _units(kind: str) -> list:
    return [u for s in REGISTRY.plant.sites for u in s.units if u.kind == kind]


def test_tank_follows_ambient_with_lag_and_pressure_is_saturation() -> None:
    tanks = Tanks(_units("storage_tank"), ambient_c=15.0)
    zero = np.zeros(len(tanks))
    for _ in range(6 * 60):  # six hours at 35 degC air, one-minute steps
        tanks.step(60, 35.0, 0.0, 0.0, TankInputs(zero, zero, zero, zero))
    assert np.all((tanks.t_c > 20) & (tanks.t_c < 35))  # moved towards the air, lagging
    propane = tanks.ids.index("TK101")
    expected = psat_bar("propane", tanks.t_c[propane]) - ATM_BAR
    assert tanks.pressure_barg()[propane] == pytest.approx(expected)


def test_fire_lifts_pressure_to_relief_and_boils_off() -> None:
    tanks = Tanks(_units("storage_tank"), ambient_c=20.0)
    i = tanks.ids.index("TK102")
    zero = np.zeros(len(tanks))
    fire = zero.copy()
    fire[i] = 8000.0
    level0 = tanks.level_pct()[i]
    peak = 0.0
    for _ in range(2 * 3600 // 10):  # 8 MW: an engulfing pool fire
        tanks.step(10, 20.0, 0.0, 0.0, TankInputs(fire, zero, zero, zero))
        peak = max(peak, tanks.pressure_barg()[i])
    set_p = tanks.relief_barg[i]
    assert set_p <= peak <= set_p * 1.11  # relieving, accumulation <= 10 %
    assert tanks.relieved_t[i] > 0
    assert tanks.level_pct()[i] < level0


def test_reactor_is_stable_with_cooling_and_runs_away_without() -> None:
    units = _units("reactor")
    cooled, lost = Reactors(units), Reactors(units)
    n = len(units)
    peak_cooled = cooled.t_c.copy()
    peak_lost = lost.t_c.copy()
    for _ in range(2 * 3600):
        cooled.step(1.0, np.ones(n), 20.0, np.zeros(n))
        lost.step(1.0, np.zeros(n), 20.0, np.zeros(n))
        peak_cooled = np.maximum(peak_cooled, cooled.t_c)
        peak_lost = np.maximum(peak_lost, lost.t_c)
    assert np.all(np.abs(peak_cooled - cooled.t0) < 3)
    hh = np.array([105.0, 175.0])  # R501, R502 reaction temperature HH limits
    assert np.all(peak_lost > hh + 10)
    assert np.all(lost.vented)  # the rupture disc went
    assert not np.any(cooled.vented)


def test_a_small_overcharge_is_absorbed_by_the_cooling() -> None:
    units = _units("reactor")
    r = Reactors(units)
    n = len(units)
    r.step(1.0, np.ones(n), 20.0, np.full(n, 10 / 50))  # 10 K worth of extra reactant
    peak = r.t_c.copy()
    for _ in range(4 * 3600):
        r.step(1.0, np.ones(n), 20.0, np.zeros(n))
        peak = np.maximum(peak, r.t_c)
    assert np.all(peak < np.array([105.0, 175.0]))  # below HH
    assert np.all(np.abs(r.t_c - r.t0) < 2)  # and back to the operating point


def test_plume_reaches_nearer_downwind_points_first_and_stronger() -> None:
    towards_east = np.pi / 2
    dx, dy = np.array([5.0, 15.0, 40.0, -10.0]), np.zeros(4)
    c, _x = plume_kg_m3(0.5, 2.0, towards_east, dx, dy)
    assert c[0] > c[1] > c[2] > 0
    assert c[3] == 0  # upwind
    ppm = to_sensor_units(c, "ammonia", np.array(["ppm"] * 4, dtype=object))
    assert ppm[0] > 1000


def test_leak_raises_downwind_detectors_in_order_of_distance() -> None:
    scenario = parse_scenario(
        {
            "name": "leak",
            "weather": {"wind_from_deg": 180, "wind_speed_m_s": 1.5, "meander_deg": 0},
            "events": [{"kind": "leak", "unit": "TK201", "at_m": [40, 110], "start": 10,
                        "duration": 600, "rate_kg_s": 0.3}],
        },
        REGISTRY,
    )  # fmt: skip
    sim = Simulation(REGISTRY, scenario, seed=3, start_ns=START_NS)
    for _ in range(240):
        sim.step()
    record = sim.truth.records()[0]
    crossing = {s: c["H"] for s, c in record["limit_crossings"].items() if "H" in c}
    # wind from the south: the south-side detectors (~13 m) before the north one (~29 m)
    assert {"TK201-GD-03", "TK201-GD-04", "TK201-GD-01"} <= set(crossing)
    assert crossing["TK201-GD-03"] < crossing["TK201-GD-01"]
    assert crossing["TK201-GD-04"] < crossing["TK201-GD-01"]
    assert record["first_knowable"] == min(crossing.values())
    assert "LD301-GD-04" not in record["sensors"]  # far away, not reached


def test_weather_cycle_moves_tank_pressure_over_a_day() -> None:
    scenario = parse_scenario({"name": "day", "weather": {"amplitude_c": 8}}, REGISTRY)
    sim = Simulation(REGISTRY, scenario, seed=1, start_ns=START_NS, dt_s=60)
    i = REGISTRY.sensor("TK101-PT-01").index
    seen = []
    for _ in range(24 * 60):
        sim.step()
        seen.append(sim.tanks.pressure_barg()[sim.tanks.ids.index("TK101")])
    assert 0.3 < max(seen) - min(seen) < 5  # a sphere breathes with the day, lagged
    assert Weather().mean_c == 20
    assert i >= 0
