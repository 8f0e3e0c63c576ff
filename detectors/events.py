"""Turn detector transitions into condition events for alerting."""

from __future__ import annotations

from common.conditions import ConditionEvent, Severity, event_id, ns_to_datetime, occurrence_id
from common.registry import Registry
from detectors.limits import LEVELS, Transitions


def severity(kind: str, level: str) -> Severity:
    """Gas second level is life safety; other outer limits are high, inner ones medium."""
    if kind == "gas":
        return "critical" if level in ("HH", "LL") else "high"
    return "high" if level in ("HH", "LL") else "medium"


def limit_events(found: Transitions, registry: Registry, detector: str) -> list[ConditionEvent]:
    """One ConditionEvent per transition (there are few; this loop is not per reading)."""
    events = []
    for i in range(len(found)):
        ref = registry.sensors[int(found.sensor[i])]
        level = LEVELS[int(found.level[i])]
        active = bool(found.active[i])
        state = "active" if active else "cleared"
        occurrence = occurrence_id(ref.unit.id, ref.sensor.id, level, int(found.activated_ns[i]))
        value, threshold, unit = float(found.value[i]), float(found.threshold[i]), ref.sensor.unit
        high = level in ("HH", "H")
        if active:
            text = (
                f"{ref.sensor.id} {ref.sensor.kind} {value:.4g} {unit} "
                f"{'above' if high else 'below'} {level} limit {threshold:g} {unit}"
            )
        else:
            text = (
                f"{ref.sensor.id} {ref.sensor.kind} back to {value:.4g} {unit}, "
                f"within {level} limit {threshold:g} {unit}"
            )
        events.append(
            ConditionEvent(
                event_id=event_id(occurrence, state),
                occurrence_id=occurrence,
                state=state,
                site=ref.site.id,
                unit=ref.unit.id,
                sensors=(ref.sensor.id,),
                condition=level,
                severity=severity(ref.sensor.kind, level),
                value=value,
                threshold=threshold,
                detector=detector,
                ts=ns_to_datetime(int(found.ts_ns[i])),
                activated_at=ns_to_datetime(int(found.activated_ns[i])),
                explanation=text,
            )
        )
    return events
