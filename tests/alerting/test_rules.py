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
