"""ISA-18.2 alarm states and the transitions driven by condition events and operators.

Pure functions: no database, no clock. See docs/domain.md section 1.2.
"""

from __future__ import annotations

from typing import Literal

AlarmState = Literal["NORMAL", "UNACK", "ACKED", "RTNUN"]

ANNUNCIATED: frozenset[str] = frozenset({"UNACK", "ACKED", "RTNUN"})


def on_condition(current: AlarmState | None, active: bool) -> AlarmState:
    """New state when the condition becomes active or clears."""
    if active:
        # Every activation is a new occurrence and needs its own acknowledgement.
        return "UNACK"
    if current in ("UNACK", "RTNUN"):
        return "RTNUN"  # cleared before anyone acknowledged: the operator must still see it
    return "NORMAL"


def on_acknowledge(current: AlarmState) -> AlarmState | None:
    """New state after an operator acknowledges; None if there is nothing to acknowledge."""
    return {"UNACK": "ACKED", "RTNUN": "NORMAL"}.get(current)  # type: ignore[return-value]
