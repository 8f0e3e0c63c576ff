"""Site weather: a diurnal ambient temperature, solar load and wind with meander."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Weather:
    """Scenario weather; times of day are UTC hours of the simulated clock."""

    mean_c: float = 20.0
    amplitude_c: float = 6.0  # half the day-night swing
    coldest_hour: float = 4.0
    solar_gain_k: float = 8.0  # extra equilibrium temperature of a sunlit shell at noon
    wind_speed_m_s: float = 2.0
    wind_from_deg: float = 270.0  # meteorological: where the wind comes from
    meander_deg: float = 10.0  # standard deviation of the slow wander of the direction


def ambient_c(w: Weather, hour_of_day: float) -> float:
    """Air temperature: a sinusoid with its minimum at ``coldest_hour``."""
    phase = 2 * math.pi * (hour_of_day - w.coldest_hour) / 24
    return w.mean_c - w.amplitude_c * math.cos(phase)


def sun(hour_of_day: float) -> float:
    """Relative solar irradiance 0..1: a half sine between 06:00 and 18:00."""
    return max(0.0, math.sin(math.pi * (hour_of_day - 6) / 12))


class Wind:
    """Wind direction wandering around its mean (an Ornstein-Uhlenbeck process)."""

    def __init__(self, w: Weather, rng: np.random.Generator, tau_s: float = 120.0) -> None:
        self.w = w
        self.rng = rng
        self.tau_s = tau_s
        self.offset_deg = 0.0

    def step(self, dt: float) -> tuple[float, float]:
        """Advance; return (speed m/s, direction the wind blows TOWARDS, radians)."""
        a = math.exp(-dt / self.tau_s)
        sd = self.w.meander_deg * math.sqrt(1 - a * a)
        self.offset_deg = a * self.offset_deg + sd * float(self.rng.normal())
        towards = math.radians(self.w.wind_from_deg + self.offset_deg + 180)
        return self.w.wind_speed_m_s, towards
