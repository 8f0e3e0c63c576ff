"""The drift baseline from a completed warm-up: the same values as ``np.median``."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.drift import MAD_TO_SIGMA, MEAN_ABS_TO_SIGMA, baselines, sort_network


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 8, 9, 30, 31, 33])
def test_baselines_equal_numpy_median(width: int) -> None:
    rng = np.random.default_rng(width)
    buf = rng.normal(size=(300, width)) * rng.choice([0.01, 1, 100], size=(300, 1))
    buf = np.round(buf, 1)  # ties, as quantised transmitters give
    buf[::7] = 3.0  # flat buffers: zero MAD
    done = np.arange(0, 300, 2)
    centre, absdev = np.full(300, np.nan), np.full(300, np.nan)
    baselines(buf, done, centre, absdev)
    med = np.median(buf[done], axis=1)
    mad = np.median(np.abs(buf[done] - med[:, None]), axis=1)
    np.testing.assert_array_equal(centre[done], med)  # bit for bit
    np.testing.assert_array_equal(absdev[done], mad * MAD_TO_SIGMA / MEAN_ABS_TO_SIGMA)
    assert np.isnan(centre[1::2]).all()  # sensors still warming up are left alone


@pytest.mark.parametrize("n", [2, 3, 8, 16, 30, 64])
def test_sort_network_sorts(n: int) -> None:  # 0-1 principle, sampled
    pairs = sort_network(n)
    rng = np.random.default_rng(n)
    for _ in range(200):
        x = list(rng.integers(0, 2, int(pairs.max()) + 1))
        for i, j in pairs:
            if x[i] > x[j]:
                x[i], x[j] = x[j], x[i]
        assert x == sorted(x)
