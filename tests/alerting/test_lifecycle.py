import pytest

from alerting.lifecycle import on_acknowledge, on_condition


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
