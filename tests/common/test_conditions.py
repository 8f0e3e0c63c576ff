from datetime import UTC, datetime

import pytest

from common.conditions import (
    ConditionEvent,
    ConditionFormatError,
    event_id,
    occurrence_id,
)


def make_event(state: str = "active") -> ConditionEvent:
    occ = occurrence_id("TK101", "TK101-PT-01", "HH", 1_700_000_000_000_000_000)
    return ConditionEvent(
        event_id=event_id(occ, state),
        occurrence_id=occ,
        state=state,  # type: ignore[arg-type]
        site="s",
        unit="TK101",
        sensors=("TK101-PT-01",),
        condition="HH",
        severity="high",
        value=16.2,
        threshold=15.5,
        detector="limits",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
        activated_at=datetime(2026, 1, 1, tzinfo=UTC),
        explanation="x",
    )


def test_ids_are_deterministic_and_distinct_per_transition() -> None:
    a, b = make_event("active"), make_event("active")
    assert a.event_id == b.event_id
    assert make_event("cleared").event_id != a.event_id
    assert make_event("cleared").occurrence_id == a.occurrence_id


def test_json_round_trip() -> None:
    e = make_event()
    assert ConditionEvent.from_json(e.to_json()) == e


@pytest.mark.parametrize(
    "raw", [b"nope", b"{}", b'{"version": 99}', b'{"version": 1, "state": "active"}']
)
def test_invalid_events_raise_format_error(raw: bytes) -> None:
    with pytest.raises(ConditionFormatError):
        ConditionEvent.from_json(raw)
