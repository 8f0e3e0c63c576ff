"""ISA-18.2 alarm states and the transitions driven by condition events and operators.

Pure functions: no database, no clock. See docs/domain.md section 1.2.

An alarm has a *base* state (NORMAL, UNACK, ACKED, RTNUN) that condition events keep
driving at all times, and at most one *overlay* that hides it from the operator:
out of service, suppressed by design or shelved. The state shown is the overlay when
there is one, else the base state. When an overlay is lifted the alarm is
re-evaluated: still abnormal -> UNACK (never silently NORMAL), else NORMAL.
"""

from __future__ import annotations

from typing import Literal

BaseState = Literal["NORMAL", "UNACK", "ACKED", "RTNUN"]
Overlay = Literal["OUT_OF_SERVICE", "SUPPRESSED_BY_DESIGN", "SHELVED"]
AlarmState = BaseState | Overlay

ANNUNCIATED: frozenset[str] = frozenset({"UNACK", "ACKED", "RTNUN"})
HIDDEN: frozenset[str] = frozenset({"OUT_OF_SERVICE", "SUPPRESSED_BY_DESIGN", "SHELVED"})


def on_condition(current: BaseState | None, active: bool) -> BaseState:
    """New base state when the condition becomes active or clears."""
    if active:
        # Every activation is a new occurrence and needs its own acknowledgement.
        return "UNACK"
    if current in ("UNACK", "RTNUN"):
        return "RTNUN"  # cleared before anyone acknowledged: the operator must still see it
    return "NORMAL"


def on_acknowledge(current: BaseState) -> BaseState | None:
    """New base state after an operator acknowledges; None if there is nothing to ack."""
    return {"UNACK": "ACKED", "RTNUN": "NORMAL"}.get(current)  # type: ignore[return-value]


def on_release(active: bool) -> BaseState:
    """Base state when shelving, suppression or out-of-service ends: re-evaluate."""
    return "UNACK" if active else "NORMAL"


def overlay(out_of_service: bool, suppressed: bool, shelved: bool) -> Overlay | None:
    """The overlay that hides an alarm; out of service outranks suppression and shelving."""
    if out_of_service:
        return "OUT_OF_SERVICE"
    if suppressed:
        return "SUPPRESSED_BY_DESIGN"
    if shelved:
        return "SHELVED"
    return None


def displayed(base: BaseState, out_of_service: bool, suppressed: bool, shelved: bool) -> str:
    """The state the operator sees."""
    return overlay(out_of_service, suppressed, shelved) or base
