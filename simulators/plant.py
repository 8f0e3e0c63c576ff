"""The simulated plant: physics from the registry, scenario events, instruments.

:class:`Simulation` advances in fixed steps of simulated time and returns the
readings due at each step (arrays), with the delivery faults applied (duplicates,
held-back out-of-order readings, malformed flags, gateways offline). It does no I/O,
so it is deterministic for a seed and testable without a broker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from common.registry import Registry
from simulators.ambient import Weather, Wind, ambient_c, sun
from simulators.plume import plume_kg_m3, to_sensor_units
from simulators.reactor import Reactors
from simulators.scenario import Event, Scenario
from simulators.sensors import FaultMasks, Instruments
from simulators.tanks import TankInputs, Tanks
from simulators.truth import Truth

_BREACH = re.compile(r"^(?P<sensor>[^=]+)=(?P<value>-?[\d.]+)@(?P<start>[\d.]+)\+(?P<dur>[\d.]+)$")
STORE_KINDS = ("storage_tank", "storage_area", "warehouse")
# sources of a sensor's true value
MAX_TRANSPORT_S = 900.0  # a leak's gas is gone from the site this long after it stops
GENERIC, TANK_T, TANK_P, TANK_L, REACT_T, REACT_P, COOLANT, GAS = range(8)


def parse_breach(text: str, registry: Registry) -> Event:
    """``SENSOR=VALUE@START_S+DURATION_S`` (e.g. ``TK101-PT-01=16.8@10+30``) as a
    ``force`` event: the sensor reads exactly VALUE for that window of simulated time."""
    match = _BREACH.match(text)
    if not match:
        raise ConfigError("--breach", text, "expected SENSOR=VALUE@START_S+DURATION_S")
    ref = registry.sensor(match["sensor"])
    if ref is None:
        raise ConfigError("--breach", text, f"unknown sensor {match['sensor']!r}")
    value = float(match["value"])
    lo, hi = ref.sensor.range
    if not lo <= value <= hi:
        raise ConfigError("--breach", text, f"value outside the sensor range [{lo}, {hi}]")
    return Event(kind="force", sensors=(ref.sensor.id,), value=value,
                 start=float(match["start"]), duration=float(match["dur"]))  # fmt: skip


@dataclass(slots=True)
class Step:
    """Readings to publish after one simulation step (parallel arrays)."""

    t_s: float
    sensor: np.ndarray  # dense index
    ts_ns: np.ndarray
    value: np.ndarray
    malformed: np.ndarray  # bool: publish a broken payload instead
    offline_units: frozenset[str]


def normal_values(registry: Registry) -> np.ndarray:
    """Operating point of sensors the physics does not cover: inside the limits."""
    lo, hi = registry.range_arrays()
    span = hi - lo
    h, low = registry.limit_array("h"), registry.limit_array("l")
    upper = np.where(np.isnan(h), hi - 0.3 * span, h)
    lower = np.where(np.isnan(low), lo, low)
    return np.where(np.isnan(low), upper - 0.2 * (upper - lower), (upper + lower) / 2)


class Simulation:
    """Plant physics + scenario + instruments, stepped in simulated time."""

    def __init__(self, registry: Registry, scenario: Scenario, seed: int, start_ns: int,
                 *, rbe_pct: float = 0.0, dt_s: float = 0.5) -> None:  # fmt: skip
        self.registry = registry
        self.scenario = scenario
        self.events = scenario.events
        self.start_ns = start_ns
        self.dt = dt_s
        self.t = 0.0
        rng = np.random.default_rng(seed)
        self.weather: Weather = scenario.weather
        self.wind = Wind(self.weather, np.random.default_rng([seed, 1]))
        self.instruments = Instruments(registry, rng, rbe_pct)
        n = len(registry)
        self.n = n
        units = [u for s in registry.plant.sites for u in s.units]
        self.tank_units = [u for u in units if u.kind in STORE_KINDS]
        self.reactor_units = [u for u in units if u.kind == "reactor"]
        self.tanks = Tanks(self.tank_units, self._ambient(0.0))
        self.reactors = Reactors(self.reactor_units)
        self._map_sensors()
        self._place_detectors()
        self._held: list[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._gateway_buffer: dict[str, list[tuple[np.ndarray, ...]]] = {}
        self._charged: set[str] = set()
        self._leak_geometry: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.truth = Truth(registry, self.events, start_ns, self._candidates())

    # ---------------------------------------------------------------- set-up
    def _map_sensors(self) -> None:
        tank_of = {u.id: i for i, u in enumerate(self.tank_units)}
        reactor_of = {u.id: i for i, u in enumerate(self.reactor_units)}
        self.src = np.full(self.n, GENERIC)
        self.model_idx = np.zeros(self.n, np.int64)
        for r in self.registry:
            s, uid, i = r.sensor, r.unit.id, r.index
            if s.kind == "gas":
                self.src[i] = GAS
            elif uid in tank_of:
                t = tank_of[uid]
                kind_src = {"temperature": TANK_T, "level": TANK_L}
                if s.kind == "pressure" and self.tanks.liquefied[t]:
                    self.src[i] = TANK_P
                elif s.kind in kind_src:
                    self.src[i] = kind_src[s.kind]
                self.model_idx[i] = t
            elif uid in reactor_of:
                hmax = max((x.limits.h or -1e9) for x in r.unit.sensors if x.kind == "temperature")
                if s.kind == "temperature":
                    self.src[i] = REACT_T if (s.limits.h or -1e9) >= hmax else COOLANT
                elif s.kind == "pressure":
                    self.src[i] = REACT_P
                self.model_idx[i] = reactor_of[uid]
        self.generic = normal_values(self.registry)
        lo, hi = self.registry.range_arrays()
        self.lo, self.hi = lo, hi
        self.background = np.where(self.src == GAS, lo + 0.005 * (hi - lo), 0.0)
        self.units_arr = np.array([r.sensor.unit for r in self.registry], dtype=object)
        self.substance = np.array([r.sensor.substance or "" for r in self.registry], dtype=object)
        self.site = np.array([r.site.id for r in self.registry], dtype=object)
        self.unit = self.registry.unit_ids

    def _place_detectors(self) -> None:
        """Registry positions; a detector without one sits at its unit's centre."""
        self.pos = np.zeros((self.n, 2))
        self.centre: dict[str, np.ndarray] = {}
        for k, (uid, (_site, unit)) in enumerate(self.registry.units.items()):
            known = [s.position_m for s in unit.sensors if s.position_m is not None]
            self.centre[uid] = np.mean(known, axis=0) if known else np.array([100.0 * k, 0.0])
        for r in self.registry:
            p = r.sensor.position_m
            self.pos[r.index] = p if p is not None else self.centre[r.unit.id]

    def _candidates(self) -> dict[str, np.ndarray]:
        out = {}
        for e in self.events:
            if e.kind == "leak":
                site = self.registry.units[e.unit or ""][0].id
                mask = (self.src == GAS) & (self.site == site)
            elif e.kind in ("loss_of_cooling", "runaway"):
                mask = (self.unit == e.unit) & (self.src != GAS)
            elif e.kind in ("overfill", "transfer"):
                mask = (self.unit == e.unit) & (self.src == TANK_L)
            elif e.kind == "overpressure":
                mask = (self.unit == e.unit) & (self.src == TANK_P)
            elif e.kind == "fire":
                mask = (self.unit == e.unit) & np.isin(self.src, [TANK_T, TANK_P, TANK_L])
            elif e.kind == "gateway_offline":
                mask = self.unit == e.unit
            else:
                mask = np.isin(self.registry.sensor_ids, e.sensors)
            out[e.id] = np.flatnonzero(mask)
        return out

    def _ambient(self, t: float) -> float:
        return ambient_c(self.weather, self._hour(t))

    def _hour(self, t: float) -> float:
        return ((self.start_ns / 1e9 + t) % 86400) / 3600

    # ---------------------------------------------------------------- stepping
    def true_values(self, leak_part: dict[str, np.ndarray], t: float) -> np.ndarray:
        """Physical values at every sensor now (before the instruments)."""
        m = self.model_idx
        by_src = {
            TANK_T: self.tanks.t_c, TANK_P: self.tanks.pressure_barg(),
            TANK_L: self.tanks.level_pct(), REACT_T: self.reactors.t_c,
            REACT_P: self.reactors.pressure_barg(), COOLANT: self.reactors.tj,
        }  # fmt: skip
        v = self.generic.copy()
        for src, arr in by_src.items():
            sel = self.src == src
            if len(arr):
                v[sel] = arr[m[sel]]
        gas = self.background + sum(leak_part.values(), np.zeros(self.n))
        v = np.where(self.src == GAS, gas, v)
        for e in self.events:
            if e.kind == "force" and e.active(t):
                v[self.truth.candidates[e.id]] = e.value
        return np.clip(v, self.lo, self.hi)

    def _drive(self, t: float, dt: float) -> dict[str, np.ndarray]:
        """Apply hazards to the physics for this step; return each leak's gas field."""
        nt, nr = len(self.tanks), len(self.reactors)
        inp = TankInputs(np.zeros(nt), np.zeros(nt), np.zeros(nt), np.zeros(nt))
        flow, charge = np.ones(nr), np.zeros(nr)
        tank_of = {u: i for i, u in enumerate(self.tanks.ids)}
        reactor_of = {u: i for i, u in enumerate(self.reactors.ids)}
        wind_u, towards = self.wind.step(dt)
        leak_part: dict[str, np.ndarray] = {}
        for e in self.events:
            ti, ri = tank_of.get(e.unit or ""), reactor_of.get(e.unit or "")
            if e.kind == "leak":
                leak_part[e.id] = self._plume(e, t, wind_u, towards)
            if not e.active(t):
                continue
            if ti is not None:
                if e.kind == "fire":
                    inp.fire_kw[ti] += e.heat_kw
                elif e.kind in ("overfill", "transfer"):
                    inp.transfer_t_h[ti] += e.rate_t_h
                elif e.kind == "overpressure":
                    inp.nc_rate_bar_s[ti] += e.rate_bar_min / 60
                elif e.kind == "leak":
                    inp.leak_kg_s[ti] += e.rate_kg_s
            if ri is not None:
                if e.kind == "loss_of_cooling":
                    flow[ri] = min(flow[ri], e.flow)
                elif e.kind == "runaway" and e.id not in self._charged:
                    self._charged.add(e.id)
                    charge[ri] += e.charge_k / 50.0  # B_MAIN kelvin per unit of reactant
        hour = self._hour(t)
        amb = ambient_c(self.weather, hour)
        self.tanks.step(dt, amb, sun(hour), self.weather.solar_gain_k, inp)
        self.reactors.step(dt, flow, amb, charge)
        return leak_part

    def _plume(self, e: Event, t: float, wind_u: float, towards: float) -> np.ndarray:
        out = np.zeros(self.n)
        if t < e.start or t > e.end + MAX_TRANSPORT_S:
            return out
        if e.id not in self._leak_geometry:
            site = self.registry.units[e.unit or ""][0].id
            sel = np.flatnonzero((self.src == GAS) & (self.site == site))
            source = np.asarray(e.at_m) if e.at_m is not None else self.centre[e.unit or ""]
            inv = self.registry.units[e.unit or ""][1].inventories
            substance = e.substance or (inv[0].substance if inv else "propane")
            # catalytic %LEL heads respond to any flammable gas; other heads to their own
            match = (self.substance[sel] == substance) | (self.units_arr[sel] == "%LEL")
            per_kg_m3 = to_sensor_units(np.ones(len(sel)), substance, self.units_arr[sel])
            self._leak_geometry[e.id] = (sel, self.pos[sel] - source, per_kg_m3 * match)
        sel, d, factor = self._leak_geometry[e.id]
        c, x = plume_kg_m3(e.rate_kg_s, wind_u, towards, d[:, 0], d[:, 1])
        emitted = t - np.maximum(x, 0) / max(wind_u, 0.5)  # transport delay
        out[sel] = np.where((emitted >= e.start) & (emitted < e.end), c, 0.0) * factor
        return out

    def _faults(self, t: float) -> FaultMasks:
        f = FaultMasks.empty(self.n)
        for e in self.events:
            if not e.active(t):
                continue
            idx = self.truth.candidates[e.id]
            if e.kind == "stuck":
                f.stuck[idx] = True
            elif e.kind == "drift":
                f.drift[idx] += e.rate_per_h * (t - e.start) / 3600
            elif e.kind == "spike":
                f.spike[idx] += e.magnitude
            elif e.kind == "offset":
                f.offset[idx] += e.magnitude
            elif e.kind == "noisy":
                f.noise_factor[idx] *= e.factor
            elif e.kind == "dropout":
                f.dropout[idx] = True
            elif e.kind == "force":
                f.force[idx] = e.value
        return f

    def step(self) -> Step:
        """Advance one step of simulated time; return the readings to publish."""
        self.t += self.dt
        t = self.t
        leak_part = self._drive(t, self.dt)
        true = self.true_values(leak_part, t)
        self.truth.update(t, true, leak_part)
        faults = self._faults(t)
        measured = self.instruments.measure(self.dt, true, faults)
        idx = self.instruments.due(t, measured, faults.dropout)
        ts = np.full(len(idx), self.start_ns + round(t * 1e9), np.int64)
        return self._deliver(t, idx, ts, measured[idx])

    def _deliver(self, t: float, idx: np.ndarray, ts: np.ndarray, value: np.ndarray) -> Step:
        """Communication faults: skew, duplicates, out-of-order, malformed, gateways."""
        malformed = np.zeros(len(idx), bool)
        offline: set[str] = set()
        for e in self.events:
            if not e.active(t):
                continue
            hit = np.isin(idx, self.truth.candidates[e.id])
            if e.kind == "clock_skew":
                ts = ts + np.where(hit, round(e.skew_s * 1e9), 0)
            elif e.kind == "malformed":
                malformed |= hit
            elif e.kind == "duplicate":
                rep = np.where(hit, 2, 1)
                idx, ts, value, malformed = (np.repeat(a, rep) for a in (idx, ts, value, malformed))
            elif e.kind == "out_of_order" and hit.any():
                self._held.append((t + e.hold_s, idx[hit], ts[hit], value[hit], malformed[hit]))
                idx, ts, value, malformed = idx[~hit], ts[~hit], value[~hit], malformed[~hit]
            elif e.kind == "gateway_offline":
                offline.add(e.unit or "")
                if hit.any() and e.buffer:
                    buf = self._gateway_buffer.setdefault(e.unit or "", [])
                    buf.append((idx[hit], ts[hit], value[hit], malformed[hit]))
                idx, ts, value, malformed = idx[~hit], ts[~hit], value[~hit], malformed[~hit]
        parts = [(idx, ts, value, malformed)]
        for unit in [u for u in self._gateway_buffer if u not in offline]:
            parts += self._gateway_buffer.pop(unit)  # store and forward, oldest first
        due = [h for h in self._held if h[0] <= t]
        self._held = [h for h in self._held if h[0] > t]
        parts += [h[1:] for h in due]
        cols = [np.concatenate([p[k] for p in parts]) for k in range(4)]
        return Step(t, cols[0].astype(np.int64), cols[1].astype(np.int64), cols[2],
                    cols[3].astype(bool), frozenset(offline))  # fmt: skip
