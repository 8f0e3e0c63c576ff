"""Turn detector transitions into condition events for alerting."""

from __future__ import annotations

from common.conditions import ConditionEvent, State, event_id, ns_to_datetime, occurrence_id
from common.registry import Registry
from detectors.base import Detector, Transitions
from detectors.multivariate import UnitMspc


def condition_events(
    detector: Detector, found: Transitions, registry: Registry
) -> list[ConditionEvent]:
    """One ConditionEvent per transition (there are few; this loop is not per reading)."""
    events = []
    for sensor, cond, active, ts, value, threshold, activated in found.rows():
        ref = registry.sensors[sensor]
        name = detector.conditions[cond]
        state: State = "active" if active else "cleared"
        occurrence = occurrence_id(ref.unit.id, ref.sensor.id, name, activated)
        events.append(
            ConditionEvent(
                event_id=event_id(occurrence, state),
                occurrence_id=occurrence,
                state=state,
                site=ref.site.id,
                unit=ref.unit.id,
                sensors=(ref.sensor.id,),
                condition=name,
                severity=detector.severity(cond, ref),
                value=_finite(value),
                threshold=_finite(threshold),
                detector=detector.name,
                ts=ns_to_datetime(ts),
                activated_at=ns_to_datetime(activated),
                explanation=detector.describe(cond, active, value, threshold, ref),
            )
        )
    return events


def _finite(x: float) -> float:
    """JSON has no NaN/inf: a missing number is sent as 0 (the explanation says more)."""
    return x if x == x and abs(x) != float("inf") else 0.0


def mspc_events(mspc: UnitMspc, found: Transitions, registry: Registry) -> list[ConditionEvent]:
    """Events of the multivariate detector: one per unit transition, naming all its sensors."""
    events = []
    for model, _cond, active, ts, value, threshold, activated in found.rows():
        unit_id = mspc.units[model]
        sensors = mspc.det.models[model].sensors
        site, _unit = registry.units[unit_id]
        state: State = "active" if active else "cleared"
        occurrence = occurrence_id(unit_id, unit_id, "MSPC", activated)
        if active:
            text = (
                f"{unit_id} multivariate pattern abnormal: PCA T2/Q at {value:.2f} x limit "
                f"over {len(sensors)} sensors"
            )
        else:
            text = f"{unit_id} multivariate pattern back to normal (PCA T2/Q {value:.2f} x limit)"
        events.append(
            ConditionEvent(
                event_id=event_id(occurrence, state),
                occurrence_id=occurrence,
                state=state,
                site=site.id,
                unit=unit_id,
                sensors=tuple(sensors),
                condition="MSPC",
                severity="medium",
                value=_finite(value),
                threshold=_finite(threshold),
                detector=mspc.name,
                ts=ns_to_datetime(ts),
                activated_at=ns_to_datetime(activated),
                explanation=text,
            )
        )
    return events
