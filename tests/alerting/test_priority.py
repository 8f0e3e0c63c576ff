import pytest

from alerting.priority import is_sensor_fault, priority


@pytest.mark.parametrize(
    ("consequence", "response_s", "grade", "expected"),
    [
        ("severe", 120, None, "critical"),
        ("severe", 600, None, "high"),
        ("major", 120, None, "high"),
        ("major", 1800, None, "medium"),
        ("moderate", 600, None, "medium"),
        ("moderate", 1800, None, "low"),
        ("minor", 60, None, "low"),
        ("major", 1800, 2, "high"),  # raised one step for a grade-2 installation
        ("severe", 60, 1, "critical"),  # already at the top
        ("minor", 60, 3, "low"),  # grade 3 is not raised
    ],
)
def test_matrix_and_hazard_raise(
    consequence: str, response_s: float, grade: int | None, expected: str
) -> None:
    assert priority("HH", "low", consequence, response_s, grade) == expected


def test_without_rationalisation_the_condition_severity_is_used() -> None:
    assert priority("HH", "high", None, None, None) == "high"
    assert priority("HH", "high", None, None, 1) == "critical"
    assert priority("HH", "bogus", None, None, None) == "low"


def test_sensor_faults_are_low_priority_maintenance_alarms() -> None:
    assert is_sensor_fault("FAULT_STUCK")
    assert not is_sensor_fault("HH")
    assert priority("FAULT_STALE", "critical", "severe", 60, 1) == "low"
