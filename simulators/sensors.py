"""What an instrument makes of the true value: lag, noise, drift, quantisation,
reporting schedule, report-by-exception, and the injected sensor faults.

Everything is an array over the plant's sensors (dense registry index); a step
costs a handful of numpy operations whatever the number of sensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.registry import Registry

# Per kind: noise sd and zero-drift random walk (fraction of span; drift per sqrt(hour)),
# first-order response time constant (s).
NOISE = {"gas": 0.003, "pressure": 0.001, "temperature": 0.0005, "level": 0.0005, "flow": 0.005}
DRIFT = {"gas": 0.002}
RESPONSE_TAU_S = {"gas": 10.0}  # catalytic/electrochemical heads: T90 about 23 s
HEARTBEAT_INTERVALS = 10  # report-by-exception still reports after this many intervals


def quantum(span: np.ndarray) -> np.ndarray:
    """Resolution of the transmitter: a power of ten near 1/1000 of the span."""
    return np.asarray(10.0 ** np.floor(np.log10(span / 1000)))


@dataclass(slots=True)
class FaultMasks:
    """Active sensor faults this step (bool or value per sensor)."""

    stuck: np.ndarray
    drift: np.ndarray  # added value
    spike: np.ndarray  # added value
    offset: np.ndarray  # added value
    noise_factor: np.ndarray
    dropout: np.ndarray
    force: np.ndarray  # NaN = not forced

    @classmethod
    def empty(cls, n: int) -> FaultMasks:
        z = np.zeros(n)
        return cls(np.zeros(n, bool), z.copy(), z.copy(), z.copy(), np.ones(n),
                   np.zeros(n, bool), np.full(n, np.nan))  # fmt: skip


class Instruments:
    """Measurement and reporting state of every sensor."""

    def __init__(self, registry: Registry, rng: np.random.Generator, rbe_pct: float) -> None:
        self.rng = rng
        n = len(registry)
        self.lo, self.hi = registry.range_arrays()
        span = self.hi - self.lo
        kinds = [r.sensor.kind for r in registry]
        self.noise_sd = np.array([NOISE.get(k, 0.002) for k in kinds]) * span
        self.drift_sd = np.array([DRIFT.get(k, 0.0) for k in kinds]) * span
        self.tau = np.array([RESPONSE_TAU_S.get(k, 0.0) for k in kinds])
        self.q = quantum(span)
        self.decimals = np.clip(-np.log10(self.q), 0, 12).astype(int)
        self.interval = np.array([r.sensor.interval_s for r in registry])
        self.next_due = rng.uniform(0, 1, n) * self.interval  # stagger the phases
        self.rbe = rbe_pct / 100 * span if rbe_pct > 0 else None
        self.last_sent = np.full(n, np.nan)
        self.last_sent_t = np.full(n, -np.inf)
        self.zero_drift = np.zeros(n)
        self.lagged: np.ndarray | None = None
        self.held = np.full(n, np.nan)

    def measure(self, dt: float, true: np.ndarray, f: FaultMasks) -> np.ndarray:
        """The instruments' outputs for the true values (all sensors)."""
        if self.lagged is None:
            self.lagged = true.copy()
        alpha = np.where(self.tau > 0, 1 - np.exp(-dt / np.maximum(self.tau, 1e-9)), 1.0)
        self.lagged += alpha * (true - self.lagged)
        self.zero_drift += self.drift_sd * np.sqrt(dt / 3600) * self.rng.normal(size=len(true))
        noise = self.rng.normal(size=len(true)) * self.noise_sd * f.noise_factor
        value = self.lagged + self.zero_drift + noise + f.drift + f.spike + f.offset
        value = np.round(value / self.q) * self.q
        value = np.clip(value, self.lo, self.hi)
        # stuck: the value at the moment it stuck, unchanged (no noise either)
        newly = f.stuck & np.isnan(self.held)
        self.held = np.where(newly, value, np.where(f.stuck, self.held, np.nan))
        value = np.where(f.stuck, self.held, value)
        return np.where(np.isnan(f.force), value, f.force)

    def due(self, t: float, value: np.ndarray, dropout: np.ndarray) -> np.ndarray:
        """Indices of sensors that report at ``t``; advances their schedule."""
        due = self.next_due <= t
        self.next_due = np.where(due, self.next_due + self.interval, self.next_due)
        if self.rbe is not None:
            changed = ~(np.abs(value - self.last_sent) < self.rbe)  # NaN (never sent) -> True
            quiet = t - self.last_sent_t >= HEARTBEAT_INTERVALS * self.interval
            due &= changed | quiet
        due &= ~dropout
        self.last_sent = np.where(due, value, self.last_sent)
        self.last_sent_t = np.where(due, t, self.last_sent_t)
        return np.flatnonzero(due)

    def rounded(self, idx: np.ndarray, value: np.ndarray) -> list[float]:
        """Values as Python floats without binary noise (7.39, not 7.390000000000001)."""
        return [round(v, d) for v, d in zip(value.tolist(), self.decimals[idx].tolist(),
                                            strict=True)]  # fmt: skip
