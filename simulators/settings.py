"""Settings of the simulator."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from common.settings import BaseProcessSettings, HttpSettings, Section


class SimulatorOptions(Section):
    client_id: str = "chemwatch-simulator"
    # Readings per sensor per registry interval; 10 = ten times faster than the plant.
    speed: float = Field(default=1.0, gt=0, le=10_000)
    duration_s: float | None = Field(default=None, gt=0)  # None = until stopped
    seed: int = 1
    breaches: tuple[str, ...] = ()  # "SENSOR=VALUE@START_S+DURATION_S"
    ledger: Path | None = None  # JSON lines of every reading published


class SimulatorSettings(BaseProcessSettings):
    http: HttpSettings = HttpSettings(port=9103)
    simulator: SimulatorOptions = SimulatorOptions()
