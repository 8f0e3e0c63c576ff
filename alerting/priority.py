"""Alarm priority (ISA-18.2 section 1.3 of docs/domain.md): consequence x time to respond.

[project choice] matrix, raised one step for units whose GB 18218 grade is 1 or 2:

| consequence \\ time to respond | < 5 min | 5-15 min | > 15 min |
|---|---|---|---|
| severe   | critical | high   | high   |
| major    | high     | high   | medium |
| moderate | medium   | medium | low    |
| minor    | low      | low    | low    |

Without a rationalised consequence the detector's condition severity is used.
Sensor-health (FAULT_*) conditions are maintenance alarms and stay low.
"""

from __future__ import annotations

from typing import Literal

Priority = Literal["critical", "high", "medium", "low"]
ORDER: tuple[Priority, ...] = ("low", "medium", "high", "critical")
RANK: dict[str, int] = {p: i for i, p in enumerate(ORDER)}

_MATRIX: dict[str, tuple[Priority, Priority, Priority]] = {
    "severe": ("critical", "high", "high"),
    "major": ("high", "high", "medium"),
    "moderate": ("medium", "medium", "low"),
    "minor": ("low", "low", "low"),
}

FAULT_PREFIX = "FAULT_"


def is_sensor_fault(condition: str) -> bool:
    """Sensor-health conditions (from the detectors) create maintenance alarms."""
    return condition.startswith(FAULT_PREFIX)


def priority(
    condition: str,
    severity: str,
    consequence: str | None,
    response_time_s: float | None,
    hazard_grade: int | None,
) -> Priority:
    """Priority of an alarm from its rationalisation and its unit's hazard grade."""
    if is_sensor_fault(condition):
        return "low"
    if consequence is not None and response_time_s is not None:
        column = 0 if response_time_s < 300 else 1 if response_time_s <= 900 else 2
        base = _MATRIX[consequence][column]
    else:
        base = severity if severity in RANK else "low"  # type: ignore[assignment]
    if hazard_grade in (1, 2):
        return ORDER[min(RANK[base] + 1, len(ORDER) - 1)]
    return base
