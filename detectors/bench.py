"""``chemwatch bench detectors``: throughput of the vectorised suite on synthetic data.

10,000 sensors x 100 readings (1 s apart) by default, fed as 10 interleaved batches like
worker polls. Reported side by side on the same data: the vectorised suite (total and per
detector), the per-reading reference implementations, and river's nearest equivalents
(EWMean/EWVar z-score per sensor, HalfSpaceTrees); the slow ones run on a prefix and
their rate is extrapolated. One process, numpy single-threaded elementwise: one core.
"""

from __future__ import annotations

import time
from itertools import pairwise
from typing import Any

import numpy as np

from detectors.base import Detector
from detectors.batch import BAD_QUALITY, sort_batch
from detectors.drift import DriftDetector, DriftParams
from detectors.exposure import ExposureDetector
from detectors.health import HealthDetector
from detectors.limits import LimitDetector
from detectors.reference import reference_for
from detectors.suite import Suite

START_NS = 1_700_000_000 * 10**9


def make_suite(n: int, seed: int = 0) -> Suite:
    """A suite over ``n`` synthetic sensors (mixed limits, rates, toxic-gas exposure)."""
    rng = np.random.default_rng(seed)
    lo, hi = np.zeros(n), np.full(n, 100.0)
    h = rng.uniform(70, 90, n)
    limits = LimitDetector(
        {"hh": h + 5, "h": h, "l": np.full(n, np.nan), "ll": np.full(n, np.nan)},
        np.full(n, 1.0),
        np.full(n, 5.0),
        np.full(n, 2.0),
    )
    from detectors.rate import RateDetector

    rate = RateDetector(np.full(n, 10.0), np.full(n, 30.0))
    drift = DriftDetector(np.ones(n, bool), np.full(n, 0.2), DriftParams())
    health = HealthDetector(lo, hi, np.full(n, 0.5), np.full(n, 600.0), np.full(n, 3.0))
    toxic = rng.random(n) < 0.1
    exposure = ExposureDetector(
        np.where(toxic, 60.0, np.nan), np.where(toxic, 55.0, np.nan), np.full(n, 3.0)
    )
    dets: list[Detector] = [limits, rate, drift, health, exposure]
    return Suite(dets, n)


def make_batches(
    n_sensors: int, n_readings: int, n_batches: int, seed: int = 1
) -> list[tuple[np.ndarray, ...]]:
    """Interleaved readings of all sensors, 1 s apart, random walks with a little junk."""
    rng = np.random.default_rng(seed)
    per = max(n_readings // n_sensors, 1)
    s = np.tile(np.arange(n_sensors), per)
    k = np.repeat(np.arange(per), n_sensors)
    t = START_NS + k * 10**9 + rng.integers(0, 10**8, len(s))
    walk = rng.normal(0, 0.8, (per, n_sensors)).cumsum(axis=0).ravel()
    v = 50 + walk
    v[rng.random(len(v)) < 0.001] = np.nan
    q = np.where(rng.random(len(v)) < 0.001, BAD_QUALITY, 0).astype(np.uint8)
    bounds = np.linspace(0, len(s), n_batches + 1).astype(int)
    return [(s[a:b], t[a:b], v[a:b], q[a:b]) for a, b in pairwise(bounds)]


def run(
    n_sensors: int = 10_000,
    n_readings: int = 1_000_000,
    n_batches: int = 10,
    reference_readings: int = 20_000,
    river: bool = True,
    progress: Any = None,
) -> dict[str, Any]:
    """Measure everything; return a JSON-able summary."""
    batches = make_batches(n_sensors, n_readings, n_batches)
    total = sum(len(b[0]) for b in batches)
    say = progress or (lambda _msg: None)

    # Warm-up pass (first-call costs, lazy imports), then the measured pass on fresh
    # state over the same data.
    import scipy.signal  # noqa: F401 - imported lazily by the EWMA; keep it out of the timing

    suite = make_suite(n_sensors)
    for b in batches[:1]:
        suite.process(*b)
    suite = make_suite(n_sensors)
    per_det = dict.fromkeys((d.name for d in suite.detectors), 0.0)
    sort_s = 0.0
    transitions = 0
    say(f"vectorised suite: {total:,} readings of {n_sensors:,} sensors in {n_batches} batches")
    started = time.perf_counter()
    for s, t, v, q in batches:
        a = time.perf_counter()
        b = sort_batch(s, t, v, q, suite.last_ts)
        sort_s += time.perf_counter() - a
        for d in suite.detectors:
            a = time.perf_counter()
            transitions += len(d.process(b))
            per_det[d.name] += time.perf_counter() - a
        suite.last_ts[b.s] = np.maximum(suite.last_ts[b.s], b.t)
    wall = time.perf_counter() - started
    state = {d.name: sum(a.nbytes for a in d.state().values()) / n_sensors for d in suite.detectors}
    out: dict[str, Any] = {
        "sensors": n_sensors,
        "readings": total,
        "batches": n_batches,
        "vectorised": {
            "seconds": round(wall, 3),
            "readings_per_s": round(total / wall),
            "us_per_reading": {
                "sort": round(1e6 * sort_s / total, 4),
                **{k: round(1e6 * v / total, 4) for k, v in per_det.items()},
            },
            "transitions": transitions,
            "state_bytes_per_sensor": {
                **{k: round(v, 1) for k, v in state.items()},
                "total": round(suite.state_bytes() / n_sensors, 1),
            },
        },
    }

    say(f"per-reading reference on the first {reference_readings:,} readings")
    ref_suite = make_suite(n_sensors)
    refs = [reference_for(d) for d in ref_suite.detectors]
    prefix = _prefix(batches, reference_readings)
    rows = list(zip(*(c.tolist() for c in prefix), strict=True))
    chunk = max(len(rows) // n_batches, 1)
    ref_times = dict.fromkeys((d.name for d in ref_suite.detectors), 0.0)
    for i in range(0, len(rows), chunk):
        part = rows[i : i + chunk]
        for d, r in zip(ref_suite.detectors, refs, strict=True):
            a = time.perf_counter()
            r.process(part)
            ref_times[d.name] += time.perf_counter() - a
    ref_total = sum(ref_times.values())
    n_ref = len(rows)
    out["reference"] = {
        "readings": n_ref,
        "readings_per_s": round(n_ref / ref_total),
        "us_per_reading": {k: round(1e6 * v / n_ref, 2) for k, v in ref_times.items()},
        "speedup": round((total / wall) / (n_ref / ref_total), 1),
    }
    if river:
        out["river"] = _river(prefix, say)
    return out


def _prefix(batches: list[tuple[np.ndarray, ...]], n: int) -> tuple[np.ndarray, ...]:
    cols = [np.concatenate([b[i] for b in batches])[:n] for i in range(4)]
    return tuple(cols)


def _river(prefix: tuple[np.ndarray, ...], say: Any) -> dict[str, Any]:
    """river's nearest equivalents, one reading at a time, on the same prefix."""
    try:
        from river import anomaly, stats
    except ImportError:
        return {"error": "river is not installed (pip install river)"}
    s, _t, v, q = prefix
    good = (q != BAD_QUALITY) & ~np.isnan(v)
    s, v = s[good].tolist(), v[good].tolist()
    out: dict[str, Any] = {"readings": len(s)}
    say(f"river EWMean/EWVar z-score per sensor on {len(s):,} readings")
    means: dict[int, Any] = {}
    vars_: dict[int, Any] = {}
    a = time.perf_counter()
    for sensor, value in zip(s, v, strict=True):
        m = means.get(sensor)
        if m is None:
            m = means[sensor] = stats.EWMean(fading_factor=0.1)
            vars_[sensor] = stats.EWVar(fading_factor=0.1)
        var = vars_[sensor]
        mu, sd = m.get(), var.get() ** 0.5
        _z = (value - mu) / sd if sd > 0 else 0.0
        m.update(value)
        var.update(value)
    dt = time.perf_counter() - a
    out["ewm_zscore"] = {
        "readings_per_s": round(len(s) / dt),
        "us_per_reading": round(1e6 * dt / len(s), 2),
    }
    n_hst = min(len(s), 5_000)
    say(f"river HalfSpaceTrees on {n_hst:,} readings (one model, features: value)")
    hst = anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=1)
    a = time.perf_counter()
    for value in v[:n_hst]:
        x = {"v": value / 100.0}
        hst.score_one(x)
        hst.learn_one(x)
    dt = time.perf_counter() - a
    out["half_space_trees"] = {
        "readings": n_hst,
        "readings_per_s": round(n_hst / dt),
        "us_per_reading": round(1e6 * dt / n_hst, 2),
    }
    return out


def table(r: dict[str, Any]) -> str:
    """Human-readable summary."""
    vec = r["vectorised"]
    lines = [
        f"{r['readings']:,} readings, {r['sensors']:,} sensors, {r['batches']} batches (one core)",
        f"vectorised suite : {vec['readings_per_s']:>12,} readings/s  ({vec['seconds']} s)",
        "  us/reading     : " + ", ".join(f"{k} {v:.3f}" for k, v in vec["us_per_reading"].items()),
        "  state B/sensor : "
        + ", ".join(f"{k} {v:g}" for k, v in vec["state_bytes_per_sensor"].items()),
    ]
    ref = r["reference"]
    lines.append(
        f"reference        : {ref['readings_per_s']:>12,} readings/s  "
        f"(x{ref['speedup']} slower than vectorised; {ref['readings']:,} readings)"
    )
    lines.append(
        "  us/reading     : " + ", ".join(f"{k} {v:.2f}" for k, v in ref["us_per_reading"].items())
    )
    rv = r.get("river")
    if rv and "error" not in rv:
        lines.append(
            f"river EWM z     : {rv['ewm_zscore']['readings_per_s']:>12,} readings/s "
            f"(z-score only; no alarms, no state snapshots)"
        )
        lines.append(
            f"river HST       : {rv['half_space_trees']['readings_per_s']:>12,} readings/s "
            f"(one univariate model)"
        )
    elif rv:
        lines.append(f"river            : {rv['error']}")
    return "\n".join(lines)
