"""Pure figures and verdicts of the end-to-end benchmark (no I/O: unit-tested)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def percentiles(values_ms: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max (ms, one decimal) and the sample count; None when there are none."""
    n = len(values_ms)
    if n == 0:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values_ms, dtype=float)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "n": n,
        "p50": round(float(p50), 1),
        "p95": round(float(p95), 1),
        "p99": round(float(p99), 1),
        "max": round(float(a.max()), 1),
    }


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a step kept up, and if not, why."""

    kept_up: bool
    reason: str


def judge_step(
    published: int,
    stored: int,
    mismatched_sensors: int,
    drain_s: float | None,
    drain_limit_s: float,
    requested_rate: float,
    achieved_rate: float,
    min_rate_fraction: float = 0.95,
) -> Verdict:
    """A step keeps up when the database holds exactly what the ledger says, within
    ``drain_limit_s`` of the last publish, and the generator reached its rate.

    ``drain_s`` is None when the ledger was not reached at all within the grace period.
    """
    if drain_s is None:
        return Verdict(False, f"ledger not reached: {stored:,} of {published:,} stored")
    if mismatched_sensors:
        return Verdict(False, f"{mismatched_sensors} sensors differ from the ledger")
    if drain_s > drain_limit_s:
        return Verdict(
            False, f"backlog: {drain_s:.1f} s to drain after publishing (> {drain_limit_s:g} s)"
        )
    if achieved_rate < min_rate_fraction * requested_rate:
        return Verdict(
            False,
            f"generator reached {achieved_rate:,.0f}/s of {requested_rate:,.0f}/s",
        )
    return Verdict(True, "kept up")


def sustained(steps: Sequence[tuple[float, bool]]) -> float:
    """The highest end-to-end rate among the steps that kept up, 0 when none did.

    ``steps`` are (end-to-end readings/s, kept up) in the order they ran.
    """
    return max((rate for rate, ok in steps if ok), default=0.0)


def drain_limit(step_seconds: float) -> float:
    """How long after the last publish the ledger may take and still count as keeping
    up: a bounded end-to-end delay, not a backlog (2 s or 10 % of the step)."""
    return max(2.0, 0.1 * step_seconds)


def rss_spread(samples: Sequence[tuple[float, float]], warmup_s: float) -> float | None:
    """(max - min) / min of RSS after the warm-up, from (seconds since start, bytes).

    None when no sample falls after the warm-up.
    """
    after = [rss for t, rss in samples if t >= warmup_s]
    if not after or min(after) <= 0:
        return None
    return (max(after) - min(after)) / min(after)


def lag_bounded(samples: Sequence[tuple[float, float]], bound: float) -> bool:
    """Lag stays bounded: never above ``bound`` and the second half not growing past
    the first half's maximum plus 10 % of the bound (a queue that only grows fails)."""
    if not samples:
        return False
    values = [v for _, v in samples]
    if max(values) > bound:
        return False
    half = len(values) // 2
    if half == 0:
        return True
    return max(values[half:]) <= max(values[:half]) + 0.1 * bound
