from pathlib import Path

import pytest

from alerting.incidents import level_for, load_rules
from common.errors import ConfigError
from tests.fixtures.services import ROOT


def test_example_rules_load() -> None:
    rules = load_rules(ROOT / "examples" / "rules.yaml")
    assert "gas-second-level-two-detectors" in {r.id for r in rules.rules}


def test_a_bad_rules_file_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - {id: x, title: y, severity: 9, match: [{conditions: [HH]}]}\n")
    with pytest.raises(ConfigError) as err:
        load_rules(bad)
    assert "rules.yaml" in str(err.value)
    assert "rules.0.severity" in str(err.value)


@pytest.mark.parametrize(
    ("severity", "critical", "grade", "level"),
    [
        (3, False, 2, "red"),
        (3, False, 3, "orange"),
        (3, False, None, "yellow"),
        (1, False, 4, "blue"),
        (2, True, 3, "orange"),
        (4, True, 1, "red"),
    ],
)
def test_four_colour_level(severity: int, critical: bool, grade: int | None, level: str) -> None:
    assert level_for(severity, critical, grade) == level


def test_example_configuration_loads() -> None:
    from alerting.settings import AlertingSettings
    from common.settings import load_settings

    settings = load_settings(AlertingSettings, ROOT / "examples" / "alerting.yaml", environ={})
    assert {u.role for u in settings.alerting.users} == {"operator", "supervisor", "viewer"}
    channels = {c.name for c in settings.alerting.notify.channels}
    for route in settings.alerting.notify.routes:
        assert {c for t in route.tiers for c in t.channels} <= channels


def test_a_route_to_an_unknown_channel_is_an_error() -> None:
    from pydantic import ValidationError

    from alerting.notify.settings import NotifySettings

    with pytest.raises(ValidationError, match="unknown channel"):
        NotifySettings.model_validate({"routes": [{"tiers": [{"channels": ["nope"]}]}]})
