"""Small detector set-ups shared by the detector tests (4 sensors, varied settings)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from detectors.base import Detector
from detectors.decision import Decision
from detectors.drift import DriftDetector, DriftParams
from detectors.exposure import ExposureDetector
from detectors.health import HealthDetector
from detectors.limits import LimitDetector
from detectors.rate import RateDetector

N = 4
NAN = np.nan
LIMITS = {
    "hh": np.array([90.0, NAN, 50.0, 10.0]),
    "h": np.array([80.0, NAN, 25.0, 5.0]),
    "l": np.array([20.0, NAN, NAN, NAN]),
    "ll": np.array([10.0, 30.0, NAN, NAN]),
}
DEADBAND = np.array([2.0, 1.0, 0.0, 0.5])


def limits() -> Detector:
    return LimitDetector(LIMITS, DEADBAND)


def limits_delayed() -> Detector:
    return LimitDetector(
        LIMITS, DEADBAND, np.array([3.0, 0.0, 5.0, 1.0]), np.array([2.0, 4.0, 0.0, 0.0])
    )


def limits_k_of_n() -> Detector:
    det = LimitDetector(LIMITS, DEADBAND)
    on, off = np.array([1.0, 0.0, 2.0, 0.0]), np.array([2.0, 0.0, 0.0, 1.0])
    det.decisions = [Decision(N, on, off, k=2, window=3) for _ in det.decisions]
    return det


def rate() -> Detector:
    return RateDetector(np.array([2.0, 30.0, NAN, 5.0]), np.array([10.0, 5.0, 10.0, 20.0]), 1.0)


def drift() -> Detector:
    return DriftDetector(
        np.array([True, True, False, True]),
        np.array([0.1, 1.0, 1.0, 0.01]),
        DriftParams(warmup=4, lam=0.3, cusum_h=3.0),
    )


def health() -> Detector:
    return HealthDetector(
        np.array([0.0, -40.0, 0.0, 0.0]),
        np.array([100.0, 80.0, 25.0, 50.0]),
        np.array([0.3, NAN, 0.5, 0.2]),
        np.array([5.0, 3.0, NAN, 10.0]),
        np.array([6.0, 4.0, 0.0, 10.0]),
        off_delay_s=3.0,
    )


def exposure() -> Detector:
    return ExposureDetector(
        np.array([1.2345, NAN, 0.7321, 3.3333]),
        np.array([0.3456, NAN, NAN, 1.1111]),
        np.array([3.0, 3.0, 10.0, 5.0]),
    )


# name -> (factory, seconds per time step of the generated streams)
FACTORIES: dict[str, tuple[Callable[[], Detector], int]] = {
    "limits": (limits, 1),
    "limits_delayed": (limits_delayed, 1),
    "limits_k_of_n": (limits_k_of_n, 1),
    "rate": (rate, 1),
    "drift": (drift, 1),
    "health": (health, 1),
    "exposure": (exposure, 30),
}
