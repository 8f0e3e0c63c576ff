"""The simulator's command line: clock alignment, formats, errors."""

from __future__ import annotations

import pytest
import yaml

from common.errors import ConfigError
from simulators.cli import main, start_ns
from simulators.truth import read_truth
from tests.fixtures.services import ROOT

NOW = 1_800_000_000 * 10**9


def test_accelerated_runs_end_at_the_wall_clock() -> None:
    # a day at 60x takes 24 minutes and starts 23 h 36 min ago: all timestamps in the
    # past and within ingest's default max_age_s of 24 h
    t0 = start_ns("auto", 60, 86_400, NOW)
    assert NOW - t0 == (86_400 - 1_440) * 10**9
    assert t0 + 86_400 * 10**9 == NOW + 1_440 * 10**9  # ends when the wall clock does
    assert start_ns("auto", 1, 600, NOW) == NOW
    assert start_ns("auto", 10, None, NOW) == NOW - 23 * 3600 * 10**9  # open-ended demo
    assert start_ns("now", 60, 600, NOW) == NOW
    assert start_ns("2026-01-01T00:00:00Z", 60, None, NOW) == 1_767_225_600 * 10**9
    with pytest.raises(ConfigError, match="needs a duration"):
        start_ns("aligned", 60, None, NOW)


def test_sparkplug_needs_a_mapped_unit(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = yaml.safe_load((ROOT / "examples" / "plant.yaml").read_text())
    for site in doc["sites"]:
        for unit in site["units"]:
            unit.pop("sparkplug", None)
    plant = tmp_path / "plant.yaml"
    plant.write_text(yaml.safe_dump(doc))
    assert main(["--plant", str(plant), "--format", "sparkplug", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "no unit of the plant has a `sparkplug` mapping" in err


def test_bad_scenario_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "s.yaml"
    bad.write_text("name: x\nevents:\n  - {kind: stuck, start: 1, duration: 2}\n")
    assert main(["--scenario", str(bad), "--duration", "1"]) == 2
    assert "events[0].sensors: stuck needs sensors" in capsys.readouterr().err


def test_dry_run_writes_truth_and_plot(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    truth, png = tmp_path / "t.jsonl", tmp_path / "p.png"
    scenario = ROOT / "examples" / "scenarios" / "overpressure-relief.yaml"
    code = main(["--scenario", str(scenario), "--dry-run", "--plot", str(png), "--truth",
                 str(truth), "--duration", "900", "--start", "2026-06-01T00:00:00Z"])  # fmt: skip
    assert code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    header, events = read_truth(truth)
    assert header["start"] == "2026-06-01T00:00:00.000+00:00"
    assert events[0]["sensors"] == ["TK101-PT-01", "TK101-PT-02"]
    assert events[0]["first_knowable"] is not None  # 0.6 bar/min reaches H inside 15 min
    assert "plot:" in capsys.readouterr().out
