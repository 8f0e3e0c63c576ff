"""Pure figures and verdicts of the end-to-end benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from chemwatch.e2e import stats


def test_percentiles_of_a_known_sample() -> None:
    p = stats.percentiles([float(v) for v in range(1, 101)])
    assert p["n"] == 100
    assert p["p50"] == pytest.approx(np.percentile(range(1, 101), 50), abs=0.05)
    assert p["p95"] == pytest.approx(95.05, abs=0.05)
    assert p["p99"] == pytest.approx(99.01, abs=0.05)
    assert p["max"] == 100.0


def test_percentiles_of_nothing_are_none() -> None:
    assert stats.percentiles([]) == {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}


def test_a_step_that_stored_everything_promptly_kept_up() -> None:
    v = stats.judge_step(1000, 1000, 0, 0.4, 2.0, 1000, 990)
    assert v.kept_up
    assert v.reason == "kept up"


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ((1000, 900, 0, None, 2.0, 1000, 1000), "ledger not reached: 900 of 1,000"),
        ((1000, 1000, 3, 0.5, 2.0, 1000, 1000), "3 sensors differ"),
        ((1000, 1000, 0, 7.5, 2.0, 1000, 1000), "backlog: 7.5 s"),
        ((1000, 1000, 0, 0.5, 2.0, 1000, 800), "generator reached 800/s of 1,000/s"),
    ],
)
def test_a_step_that_fell_behind_says_why(args: tuple, why: str) -> None:
    v = stats.judge_step(*args)
    assert not v.kept_up
    assert why in v.reason


def test_sustained_is_the_best_step_that_kept_up() -> None:
    assert stats.sustained([(20_000, True), (48_000, True), (61_000, False)]) == 48_000
    assert stats.sustained([(900, False)]) == 0.0


def test_drain_limit_grows_with_long_steps_only() -> None:
    assert stats.drain_limit(6) == 2.0
    assert stats.drain_limit(60) == 6.0


def test_rss_spread_ignores_the_warm_up() -> None:
    samples = [(0.0, 50.0), (10.0, 90.0), (30.0, 100.0), (40.0, 104.0), (50.0, 102.0)]
    assert stats.rss_spread(samples, warmup_s=20) == pytest.approx(0.04)
    assert stats.rss_spread(samples, warmup_s=100) is None


def test_lag_bounded_rejects_a_growing_or_too_high_lag() -> None:
    steady = [(t, 0.5 + 0.1 * (t % 3)) for t in range(20)]
    growing = [(t, 0.2 * t) for t in range(20)]
    assert stats.lag_bounded(steady, bound=5)
    assert not stats.lag_bounded(growing, bound=5)  # reaches 3.8 s, growing throughout
    assert not stats.lag_bounded([(0, 1.0), (1, 6.0)], bound=5)
    assert not stats.lag_bounded([], bound=5)
