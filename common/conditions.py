"""Condition events on the Kafka ``conditions`` topic (detectors -> alerting).

A condition is a detector's verdict that something is abnormal ("TK101-PT-01 above
HH"). Each transition (active, cleared) is one JSON event with a deterministic id, so a
replay after a crash produces the same id and alerting applies it once.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from common.errors import ChemWatchError

SCHEMA_VERSION = 1
_NAMESPACE = uuid.UUID("0b6f1c44-52f4-4d8f-9a0c-6b1d8c8e2a51")

State = Literal["active", "cleared"]
Severity = Literal["low", "medium", "high", "critical"]


class ConditionFormatError(ChemWatchError):
    """A record on the conditions topic is not a valid condition event."""


def occurrence_id(unit: str, sensor: str, condition: str, activated_ns: int) -> str:
    """Deterministic id of one activation of a condition (shared by its clear event)."""
    return str(uuid.uuid5(_NAMESPACE, f"{unit}|{sensor}|{condition}|{activated_ns}"))


def event_id(occurrence: str, state: State) -> str:
    """Deterministic id of one transition of an occurrence."""
    return str(uuid.uuid5(uuid.UUID(occurrence), state))


@dataclass(frozen=True, slots=True)
class ConditionEvent:
    event_id: str
    occurrence_id: str
    state: State
    site: str
    unit: str
    sensors: tuple[str, ...]
    condition: str
    severity: Severity
    value: float
    threshold: float
    detector: str
    ts: datetime  # time of this transition (source time of the deciding reading)
    activated_at: datetime
    explanation: str

    def to_json(self) -> bytes:
        """Serialise for Kafka."""
        data: dict[str, Any] = asdict(self)
        data["version"] = SCHEMA_VERSION
        data["sensors"] = list(self.sensors)
        data["ts"] = self.ts.isoformat()
        data["activated_at"] = self.activated_at.isoformat()
        return json.dumps(data, allow_nan=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ConditionEvent:
        """Parse a Kafka record; raise ConditionFormatError with the reason."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ConditionFormatError("condition event must be a JSON object")
            if data.pop("version") != SCHEMA_VERSION:
                raise ConditionFormatError("unsupported condition event version")
            data["sensors"] = tuple(data["sensors"])
            data["ts"] = _utc(data["ts"])
            data["activated_at"] = _utc(data["activated_at"])
            data["value"] = float(data["value"])
            data["threshold"] = float(data["threshold"])
            return cls(**data)
        except ConditionFormatError:
            raise
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # RecursionError: json.loads of absurdly deep nesting.
            raise ConditionFormatError(f"invalid condition event: {exc}") from exc


def _utc(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return ts.astimezone(UTC)


def ns_to_datetime(ns: int) -> datetime:
    """Epoch nanoseconds to an aware UTC datetime (microsecond precision)."""
    return datetime.fromtimestamp(ns // 1000 / 1e6, UTC)
