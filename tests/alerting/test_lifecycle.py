import pytest

from alerting.lifecycle import displayed, on_acknowledge, on_condition, on_release


@pytest.mark.parametrize(
    ("current", "active", "expected"),
    [
        (None, True, "UNACK"),
        ("NORMAL", True, "UNACK"),
        ("UNACK", False, "RTNUN"),  # cleared before anyone acknowledged it
        ("ACKED", False, "NORMAL"),
        ("RTNUN", True, "UNACK"),
        ("ACKED", True, "UNACK"),  # a new occurrence needs its own acknowledgement
        ("RTNUN", False, "RTNUN"),
    ],
)
def test_condition_transitions(current: str | None, active: bool, expected: str) -> None:
    assert on_condition(current, active) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "expected"),
    [("UNACK", "ACKED"), ("RTNUN", "NORMAL"), ("ACKED", None), ("NORMAL", None)],
)
def test_acknowledge(current: str, expected: str | None) -> None:
    assert on_acknowledge(current) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("oos", "suppressed", "shelved", "expected"),
    [
        (False, False, False, "ACKED"),
        (False, False, True, "SHELVED"),
        (False, True, True, "SUPPRESSED_BY_DESIGN"),
        (True, True, True, "OUT_OF_SERVICE"),
    ],
)
def test_overlays_hide_the_base_state(
    oos: bool, suppressed: bool, shelved: bool, expected: str
) -> None:
    assert displayed("ACKED", oos, suppressed, shelved) == expected


def test_release_reevaluates() -> None:
    assert on_release(active=True) == "UNACK"  # never silently NORMAL while abnormal
    assert on_release(active=False) == "NORMAL"
