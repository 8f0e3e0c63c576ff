"""Condition events for alerting tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.conditions import ConditionEvent, event_id, occurrence_id

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def pair(
    sensor: str,
    condition: str,
    start_s: float,
    end_s: float | None = None,
    unit: str = "TK101",
    site: str = "haibin-terminal",
    severity: str = "high",
    value: float = 16.0,
    base: datetime = T0,
) -> list[ConditionEvent]:
    """The active event (and, with ``end_s``, the cleared event) of one occurrence."""
    start = base + timedelta(seconds=start_s)
    occ = occurrence_id(unit, sensor, condition, int(start.timestamp() * 1e9))
    common = {
        "occurrence_id": occ,
        "site": site,
        "unit": unit,
        "sensors": (sensor,),
        "condition": condition,
        "severity": severity,
        "value": value,
        "threshold": 15.5,
        "detector": "limits",
        "activated_at": start,
        "explanation": f"{sensor} {condition}",
    }
    out = [ConditionEvent(event_id=event_id(occ, "active"), state="active", ts=start, **common)]
    if end_s is not None:
        end = base + timedelta(seconds=end_s)
        out.append(
            ConditionEvent(event_id=event_id(occ, "cleared"), state="cleared", ts=end, **common)
        )
    return out
