"""Settings of the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from common.settings import BaseProcessSettings, HttpSettings, Section


class SimulatorOptions(Section):
    client_id: str = "chemwatch-simulator"
    # Simulated seconds per wall-clock second: 60 = a day in 24 minutes.
    speed: float = Field(default=1.0, gt=0, le=10_000)
    duration_s: float | None = Field(default=None, gt=0)  # simulated; None = scenario's or forever
    seed: int = 1
    breaches: tuple[str, ...] = ()  # "SENSOR=VALUE@START_S+DURATION_S"
    ledger: Path | None = None  # JSON lines of every reading published
    scenario: Path | None = None  # YAML timeline of hazards and faults
    truth: Path | None = None  # ground-truth JSON lines written at the end of the run
    format: Literal["json", "batch", "sparkplug"] = "json"
    # "now", "aligned" (end of the run at the wall clock: keeps accelerated timestamps
    # in the past, inside ingest's max_age_s), "auto" (aligned when speed > 1), or RFC 3339.
    start: str = "auto"
    rbe_pct: float = Field(default=0.0, ge=0, le=100)  # report-by-exception deadband, % span
    step_s: float = Field(default=0.5, gt=0, le=10)  # simulated time step
    progress: bool = False  # a status line on stderr every couple of seconds


class SimulatorSettings(BaseProcessSettings):
    http: HttpSettings = HttpSettings(port=9103)
    simulator: SimulatorOptions = SimulatorOptions()
