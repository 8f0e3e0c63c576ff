"""Report rendering from a summary (no services)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chemwatch.e2e import report, stats


def _step(rate: float, kept_up: bool, alarm_p99: float, t0: float) -> dict[str, Any]:
    lat = {k: stats.percentiles([alarm_p99 / 2, alarm_p99]) for k in ("db", "condition", "alarm")}
    return {
        "kind": "step", "sensors": 1000, "mode": "batch", "requested_rate": rate,
        "published": int(rate * 10), "mqtt_messages": int(rate / 10), "publish_rate": rate,
        "publish_fall_behind_s": 0.01, "stored": int(rate * 10), "mismatched_sensors": 0,
        "missing_at_grace": 0, "sensors_lost": 0, "drain_s": 0.5 if kept_up else 9.0,
        "e2e_readings_per_s": rate * 0.98,
        "kept_up": kept_up, "verdict": "kept up" if kept_up else "backlog: 9.0 s",
        "latency_ms": lat, "probes": {}, "db_latency_method": "commit timestamp",
        "usage": {"detectors-0": {"cpu_cores": 0.9, "peak_rss_mb": 210.0},
                  "kafka": {"cpu_cores": 0.3, "peak_rss_mb": 900.0}},
        "t0": t0, "t_end": t0 + 10,
    }  # fmt: skip


def _summary() -> dict[str, Any]:
    steps = [_step(20_000, True, 80, 100.0), _step(50_000, False, 4000, 130.0)]
    half = _step(9_800, True, 60, 160.0) | {"kind": "half-rate"}
    lag = [{"t": 100.0 + i, "lag_records": i % 5, "lag_s": 0.1 * (i % 5), "alerting_lag": 0}
           for i in range(80)]  # fmt: skip
    return {
        "options": {"mode": "batch", "bridges": 1, "workers": 1, "step_seconds": 10},
        "started": 100.0,
        "command": "chemwatch bench e2e --rates 20000,50000",
        "stepped": {
            "sensors": 1000, "steps": steps, "half_rate_step": half,
            "sustained_readings_per_s": 19_600.0, "best_observed_readings_per_s": 49_000.0,
            "errors": {"detectors-0": 0}, "state_bytes": 4096, "lag": lag, "rss_mb": [],
        },
    }  # fmt: skip


def test_report_json_and_plots_are_written(tmp_path: Path) -> None:
    paths = report.write_all(_summary(), tmp_path)
    text = paths["report"].read_text()
    assert "**Sustained end to end: 19,600 readings/s**" in text
    assert "| step | 20,000 |" in text
    assert "no: backlog: 9.0 s" in text
    assert ">= 100,000 readings/s with gateway batches: NOT met" in text
    # the half-rate step's p99 publish -> alarm is 60 ms: the 250 ms goal is met
    assert "p99 60 ms, met" in text
    assert "detectors-0 0.90" in text
    assert "commit timestamp of the row" in text
    saved = json.loads(paths["json"].read_text())
    assert saved["stepped"]["sustained_readings_per_s"] == 19_600.0
    assert saved["machine"]["cpus"] >= 1
    for name in ("rate_latency", "lag"):
        assert paths[name].stat().st_size > 5_000
        assert paths[name].read_bytes()[:4] == b"\x89PNG"


def test_a_missed_goal_and_a_loss_are_reported(tmp_path: Path) -> None:
    summary = _summary()
    summary["stepped"]["half_rate_step"]["latency_ms"]["alarm"]["p99"] = 400.0
    summary["stepped"]["steps"][0]["sensors_lost"] = 3
    late = summary["stepped"]["steps"][1]
    late |= {"drain_s": None, "missing_at_grace": 1234, "sensors_lost": 0}
    text = report.markdown(summary | {"machine": report.machine()}, [])
    assert "p99 400 ms, NOT met" in text
    assert "NO: 3 sensors differ" in text
    assert "1,234 not yet stored at the end of the grace; all stored later, no loss" in text
    assert "no loss (ledger = database, 3 of 3 steps checked to the end): NOT met" in text


def test_a_half_rate_step_left_out_on_purpose_is_not_blamed_on_the_pipeline() -> None:
    summary = _summary()
    summary["options"]["half_rate"] = False
    summary["stepped"]["half_rate_step"] = None
    text = report.markdown(summary | {"machine": report.machine()}, [])
    assert "p99 at half rate: not measured (--no-half-rate)" in text
    assert "no step kept up" not in text
