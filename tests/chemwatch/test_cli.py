"""Every command level answers --help; every service is also `python -m <package>`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chemwatch.cli import build_parser

COMMANDS = [
    [],
    ["stack"],
    ["stack", "up"],
    ["stack", "down"],
    ["stack", "status"],
    ["ingest"],
    ["detect"],
    ["alerting"],
    ["simulate"],
    ["demo"],
    ["db"],
    ["db", "migrate"],
    ["db", "maintain"],
    ["db", "retention"],
    ["registry"],
    ["registry", "sync"],
    ["bench"],
    ["bench", "storage"],
    ["bench", "dashboards"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "chemwatch")
def test_help_at_every_level(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*command, "--help"])
    assert done.value.code == 0
    assert "usage: chemwatch" in capsys.readouterr().out


@pytest.mark.parametrize("package", ["ingest", "detectors", "alerting", "simulators", "chemwatch"])
def test_python_dash_m_entry_points(package: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", package, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_bad_config_is_one_clear_line_and_exit_2(tmp_path: pytest.TempPathFactory) -> None:
    cfg = tmp_path / "bad.yaml"  # type: ignore[operator]
    cfg.write_text("mqtt:\n  port: nope\n")
    result = subprocess.run(
        [sys.executable, "-m", "ingest", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"error: {cfg}: mqtt.port:" in result.stderr
    assert "Traceback" not in result.stderr
