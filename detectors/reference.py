"""Per-reading reference implementations of every detector (tests and benchmarks only).

Plain Python, one reading at a time, written the textbook way. Each mirrors one
vectorised detector (same parameters, same batch semantics: readings are taken in
(sensor, time) order within a batch, and a reading older than the newest one already
processed for its sensor is late and decides nothing). Output rows are
``(sensor, condition, active, ts, value, threshold, activated)`` like
:meth:`detectors.base.Transitions.rows`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from detectors.batch import BAD_QUALITY
from detectors.decision import Decision, reference_decide
from detectors.drift import MAD_TO_SIGMA, MEAN_ABS_TO_SIGMA, DriftDetector
from detectors.exposure import RESET_FRACTION as EXPOSURE_RESET
from detectors.exposure import WINDOWS, ExposureDetector
from detectors.health import OFFLINE, QUALITY, RANGE, SPIKE, STALE, STUCK, HealthDetector
from detectors.limits import _HIGH, LEVELS, LimitDetector
from detectors.multivariate import UnitMspc
from detectors.rate import RESET_FRACTION as RATE_RESET
from detectors.rate import RateDetector, reference_rate
from detectors.redundancy import GroupDetector

Reading = tuple[int, int, float, int]  # sensor, ts_ns, value, quality
Row = tuple[int, int, bool, int, float, float, int]


class Reference:
    """Base: per-sensor dict state, late filtering, the reference decision layer."""

    def __init__(self, decisions: list[Decision]) -> None:
        self.params = [(d.on_ns, d.off_ns, d.k, d.window) for d in decisions]
        self.dstate: dict[tuple[int, int], dict[str, Any]] = defaultdict(dict)
        self.last_ts: dict[int, int] = {}

    def decide(
        self, s: int, cond: int, t: int, set_: bool, reset: bool, value: float, threshold: float
    ) -> list[Row]:
        """One reading through the reference decision layer."""
        on, off, k, n = self.params[cond]
        got = reference_decide(
            self.dstate[(s, cond)], t, set_, reset, int(on[s]), int(off[s]), k, n
        )
        if got is None:
            return []
        _, rises, activated = got
        return [(s, cond, rises, t, value, threshold, activated)]

    def process(self, readings: list[Reading]) -> list[Row]:
        """A batch: sort, flag late readings, feed them one at a time."""
        out: list[Row] = []
        before = dict(self.last_ts)
        for s, t, v, q in sorted(readings, key=lambda r: (r[0], r[1])):
            late = t < before.get(s, 0)
            out += self.reading(s, t, v, q, late)
            if not late:
                self.last_ts[s] = max(self.last_ts.get(s, 0), t)
        out += self.end_of_batch()
        return out

    def reading(self, s: int, t: int, v: float, q: int, late: bool) -> list[Row]:
        """Handle one reading."""
        raise NotImplementedError

    def end_of_batch(self) -> list[Row]:
        """Per-batch learning (default none)."""
        return []


def usable(v: float, q: int, late: bool) -> bool:
    """Good or uncertain, a number, in time."""
    return not late and q != BAD_QUALITY and not math.isnan(v)


class LimitReference(Reference):
    def __init__(self, det: LimitDetector) -> None:
        super().__init__(det.decisions)
        self.limits, self.band = det.limits, det.deadband

    def reading(self, s: int, t: int, v: float, q: int, late: bool) -> list[Row]:
        out: list[Row] = []
        if not usable(v, q, late):
            return out
        for li, level in enumerate(LEVELS):
            limit = float(self.limits[li, s])
            if math.isnan(limit):
                continue
            band = float(self.band[s])
            if _HIGH[level]:
                set_, reset = v >= limit, v < limit - band
            else:
                set_, reset = v <= limit, v > limit + band
            out += self.decide(s, li, t, set_, reset, v, limit)
        return out


class RateReference(Reference):
    def __init__(self, det: RateDetector) -> None:
        super().__init__(det.decisions)
        self.limit, self.tau = det.limit, det.tau
        self.fit: dict[int, dict[str, float]] = defaultdict(dict)

    def reading(self, s: int, t: int, v: float, q: int, late: bool) -> list[Row]:
        limit = float(self.limit[s])
        if not usable(v, q, late) or math.isnan(limit):
            return []
        slope = reference_rate(self.fit[s], t, v, float(self.tau[s]))
        if math.isnan(slope):
            return []
        return self.decide(s, 0, t, slope >= limit, slope < limit * RATE_RESET, slope, limit)


class DriftReference(Reference):
    def __init__(self, det: DriftDetector) -> None:
        super().__init__(det.decisions)
        self.p, self.enabled, self.floor = det.p, det.enabled, det.floor
        self.st: dict[int, dict[str, Any]] = defaultdict(
            lambda: {
                "buf": [], "centre": None, "absdev": 0.0, "ew": 0.0, "cp": 0.0, "cn": 0.0,
                "last": math.nan, "repeats": 0,
            }
        )  # fmt: skip
        self.batch: list[tuple[int, float, float]] = []  # (sensor, value, z) this batch
        self.warm_at_start: dict[int, bool] = {}

    def reading(self, s: int, t: int, v: float, q: int, late: bool) -> list[Row]:
        if not usable(v, q, late) or not self.enabled[s]:
            return []
        p, st = self.p, self.st[s]
        st["repeats"] = st["repeats"] + 1 if v == st["last"] else 0
        st["last"] = v
        if st["repeats"] > p.flat_run:  # a flat run: a stuck transmitter, not the process
            return []
        warm = self.warm_at_start.setdefault(s, st["centre"] is not None)
        if not warm:
            self.batch.append((s, v, math.nan))
            return []
        scale = max(st["absdev"] * MEAN_ABS_TO_SIGMA, float(self.floor[s]))
        z = min(max((v - st["centre"]) / scale, -p.z_clip), p.z_clip)
        self.batch.append((s, v, z))
        st["ew"] = (1 - p.lam) * st["ew"] + p.lam * z
        st["cp"] = max(0.0, st["cp"] + z - p.cusum_k)
        st["cn"] = max(0.0, st["cn"] - z - p.cusum_k)
        norm = math.sqrt(p.lam / (2 - p.lam))
        lim_e = p.ewma_limit
        ew = st["ew"]
        cu = st["cp"] if st["cp"] >= st["cn"] else -st["cn"]
        out = self.decide(
            s, 0, t, abs(ew) >= lim_e, abs(ew) < lim_e * p.reset_fraction, ew / norm, p.ewma_l
        )
        out += self.decide(
            s, 1, t, abs(cu) >= p.cusum_h, abs(cu) < p.cusum_h * p.reset_fraction, cu, p.cusum_h
        )
        return out

    def end_of_batch(self) -> list[Row]:
        p = self.p
        acc: dict[int, list[float]] = defaultdict(list)
        for s, v, z in self.batch:
            st = self.st[s]
            if math.isnan(z):
                if len(st["buf"]) < p.warmup:
                    st["buf"].append(v)
                    if len(st["buf"]) == p.warmup:
                        med = float(np.median(st["buf"]))
                        mad = float(np.median([abs(x - med) for x in st["buf"]]))
                        st["centre"], st["absdev"] = med, mad * MAD_TO_SIGMA / MEAN_ABS_TO_SIGMA
                continue
            quiet = all(self.dstate[(s, c)].get("since", 0) == 0 for c in (0, 1))
            if abs(z) < p.gate and quiet:
                acc[s].append(v)
        for s, values in acc.items():
            st = self.st[s]
            devs = [v - st["centre"] for v in values]
            gain = 1.0 - (1.0 - p.baseline_alpha) ** len(values)
            mean_dev = sum(devs) / len(devs)
            mean_abs = sum(abs(d) for d in devs) / len(devs)
            st["centre"] += gain * mean_dev
            st["absdev"] += gain * (mean_abs - st["absdev"])
        self.batch, self.warm_at_start = [], {}
        return []


class HealthReference(Reference):
    def __init__(self, det: HealthDetector) -> None:
        super().__init__(det.decisions)
        self.d = det
        self.last_v: dict[int, float] = {}
        self.last_seen: dict[int, int] = {}
        self.stale_since: dict[int, int] = {}

    def reading(self, s: int, t: int, v: float, q: int, late: bool) -> list[Row]:
        d, out = self.d, []
        lo, hi, margin = float(d.lo[s]), float(d.hi[s]), float(d.margin[s])
        if usable(v, q, late):
            outside = v < lo - margin or v > hi + margin
            bound = hi if v > hi else lo
            out += self.decide(s, RANGE, t, outside, not outside, v, bound)
            prev = self.last_v.get(s)
            if prev is not None:
                step = abs(v - prev)
                jump, stuck = float(d.jump[s]), float(d.stuck_s[s])
                if not math.isnan(jump):
                    out += self.decide(s, SPIKE, t, step > jump, step <= jump, step, jump)
                if not math.isnan(stuck):
                    out += self.decide(s, STUCK, t, step == 0.0, step > 0.0, v, stuck)
            self.last_v[s] = v
        if late:
            return out
        bad, nan = q == BAD_QUALITY, math.isnan(v)
        offline = bad and nan
        faulty = (bad or nan) and not offline
        good = not bad and not nan
        out += self.decide(s, QUALITY, t, faulty, good, float(q), float(BAD_QUALITY))
        out += self.decide(s, OFFLINE, t, offline, good, float(q), float(BAD_QUALITY))
        limit = int(d.stale_ns[s])
        prev_t = self.last_seen.get(s, 0)
        since = self.stale_since.get(s, 0)
        if limit > 0:
            if since:
                gap = (t - prev_t) / 1e9
                out.append((s, STALE, False, t, gap, limit / 1e9, since))
                self.stale_since[s] = 0
            elif prev_t and t - prev_t > limit:
                act = prev_t + limit
                out.append((s, STALE, True, act, limit / 1e9, limit / 1e9, act))
                out.append((s, STALE, False, t, (t - prev_t) / 1e9, limit / 1e9, act))
        self.last_seen[s] = t
        return out

    def tick(self, now_ns: int) -> list[Row]:
        """Clock-driven stale detection."""
        out = []
        for s, seen in self.last_seen.items():
            limit = int(self.d.stale_ns[s])
            if limit > 0 and not self.stale_since.get(s, 0) and now_ns - seen > limit:
                act = seen + limit
                self.stale_since[s] = act
                out.append((s, STALE, True, act, limit / 1e9, limit / 1e9, act))
        return out


class ExposureReference(Reference):
    def __init__(self, det: ExposureDetector) -> None:
        super().__init__(det.decisions)
        self.limit, self.hold = det.limit, det.hold_ns
        self.history: dict[int, list[tuple[int, float]]] = defaultdict(list)  # (t, c)
        self.prev_batches: dict[int, int] = {}  # rows of history from earlier batches
        self.last: dict[int, int] = {}

    def process(self, readings: list[Reading]) -> list[Row]:
        self.prev_batches = {s: len(h) for s, h in self.history.items()}
        return super().process(readings)

    def reading(self, s: int, t: int, v: float, q: int, late: bool) -> list[Row]:
        if not usable(v, q, late) or np.isnan(self.limit[:, s]).all():
            return []
        prev = self.last.get(s, 0)
        hold = int(self.hold[s])
        dt = hold if prev == 0 else min(t - prev, hold)
        self.last[s] = t
        self.history[s].append((t, v * (dt / 1e9)))
        out: list[Row] = []
        for wi, (_, bucket_s, nb, window_s) in enumerate(WINDOWS):
            limit = float(self.limit[wi, s])
            if math.isnan(limit):
                continue
            width = bucket_s * 1_000_000_000
            b = t // width
            old = self.history[s][: self.prev_batches.get(s, 0)]
            new = self.history[s][self.prev_batches.get(s, 0) :]
            inside = sum(c for tj, c in new if tj // width > b - nb)
            carried = sum(c for tj, c in old if tj // width > b - nb)
            avg = (inside + carried) / window_s
            out += self.decide(s, wi, t, avg >= limit, avg < limit * EXPOSURE_RESET, avg, limit)
        return out


def reference_for(det: Any) -> Reference:
    """The reference implementation mirroring a vectorised detector."""
    for cls, ref in (
        (LimitDetector, LimitReference),
        (RateDetector, RateReference),
        (DriftDetector, DriftReference),
        (HealthDetector, HealthReference),
        (ExposureDetector, ExposureReference),
    ):
        if isinstance(det, cls):
            return ref(det)  # type: ignore[arg-type]
    raise TypeError(f"no reference for {type(det).__name__}")


class GroupReference:
    """Per-reading reference of :class:`detectors.redundancy.GroupDetector`."""

    def __init__(self, det: GroupDetector) -> None:
        self.groups = det.groups
        self.on, self.off = det.decision.on_ns, det.decision.off_ns
        self.held: list[dict[int, float]] = [{} for _ in det.groups]
        self.dstate: dict[int, dict[str, Any]] = defaultdict(dict)

    def process(self, readings: list[tuple[int, int, float]]) -> list[Row]:
        """Usable (sensor, ts, value) readings of one batch."""
        out: list[Row] = []
        for gi, g in enumerate(self.groups):
            members = [int(m) for m in g.members]
            mine = sorted((r for r in readings if r[0] in members), key=lambda r: (r[1], r[0]))
            for s, t, v in mine:
                self.held[gi][s] = v
                vals = [self.held[gi].get(m, math.nan) for m in members]
                if g.condition == "GAS_VOTE":
                    score = float(sum(x >= lim for x, lim in zip(vals, g.limits, strict=True)))
                    set_, reset, thr = score >= g.k, score < g.k, float(g.k)
                else:
                    if any(math.isnan(x) for x in vals):
                        continue
                    score = max(vals) - min(vals)
                    thr = float(g.limits[0])
                    set_, reset = score > thr, score < 0.8 * thr
                got = reference_decide(
                    self.dstate[gi], t, set_, reset, int(self.on[gi]), int(self.off[gi])
                )
                if got is not None:
                    out.append((gi, 0, got[1], t, score, thr, got[2]))
        return out


class MspcReference:
    """Per-reading reference of :class:`detectors.multivariate.UnitMspc`."""

    def __init__(self, det: UnitMspc) -> None:
        self.d = det
        self.held: list[dict[int, float]] = [{} for _ in det.units]
        self.smoothed: list[np.ndarray | None] = [None for _ in det.units]
        self.dstate: dict[int, dict[str, Any]] = defaultdict(dict)

    def process(self, readings: list[tuple[int, int, float]]) -> list[Row]:
        """Usable (sensor, ts, value) readings of one batch."""
        d, out = self.d, []
        mine = [r for r in readings if d.model_of[r[0]] >= 0]
        for s, t, v in sorted(mine, key=lambda r: (int(d.model_of[r[0]]), r[1], r[0])):
            u, j = int(d.model_of[s]), int(d.col_of[s])
            self.held[u][j] = v
            model = d.det.models[u]
            p = len(model.sensors)
            if len(self.held[u]) < p:
                continue
            x = np.array([self.held[u][k] for k in range(p)])
            a = d.det.alpha
            prev = self.smoothed[u]
            sm = x if prev is None else (1 - a) * prev + a * x
            self.smoothed[u] = sm
            t2, q = model.score(sm[None, :])
            f = d.det.factor
            score = max(float(t2[0]) / (model.t2_limit * f), float(q[0]) / (model.q_limit * f))
            got = reference_decide(
                self.dstate[u],
                t,
                score >= 1.0,
                score < d.det.reset_fraction,
                int(d.det.decision.on_ns[u]),
                int(d.det.decision.off_ns[u]),
            )
            if got is not None:
                out.append((u, 0, got[1], t, score, 1.0, got[2]))
        return out
