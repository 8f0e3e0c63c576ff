"""Dead letters on the Kafka ``readings.dlq`` topic: a rejected payload and why."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str  # MQTT topic of origin (also the Kafka key)
    reason: str  # stable machine code, e.g. "not_json", "unknown_sensor"
    message: str  # human explanation
    payload: bytes  # the raw payload, unchanged
    received_at: datetime
    index: int | None = None  # position in a gateway batch, when one reading was rejected

    def to_json(self) -> bytes:
        """Serialise for Kafka; the payload is kept byte-exact as base64."""
        data: dict[str, Any] = {
            "topic": self.topic,
            "reason": self.reason,
            "message": self.message,
            "payload_b64": base64.b64encode(self.payload).decode(),
            "received_at": self.received_at.isoformat(),
        }
        if self.index is not None:
            data["index"] = self.index
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> DeadLetter:
        """Parse a dead letter read back from Kafka; anything else on the topic raises
        DeadLetterFormatError (never another exception)."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise DeadLetterFormatError("not a JSON object")
            missing = [k for k in _TEXT_FIELDS if not isinstance(data.get(k), str)]
            if missing:
                raise DeadLetterFormatError(f"{missing[0]!r} is missing or not a string")
            index = data.get("index")
            if index is not None and (type(index) is not int or index < 0):
                raise DeadLetterFormatError(f"index {index!r} is not a position")
            return cls(
                topic=data["topic"],
                reason=data["reason"],
                message=data["message"],
                payload=base64.b64decode(data["payload_b64"], validate=True),
                received_at=datetime.fromisoformat(data["received_at"]),
                index=index,
            )
        except DeadLetterFormatError:
            raise
        except (ValueError, RecursionError) as exc:  # JSON, UTF-8, base64, ISO time
            raise DeadLetterFormatError(f"not a dead letter: {exc}") from exc


class DeadLetterFormatError(ValueError):
    """A record on the dead-letter topic that is not a dead letter."""


_TEXT_FIELDS = ("topic", "reason", "message", "payload_b64", "received_at")
