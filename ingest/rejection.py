"""Why a payload (or one entry of a batch) was rejected: stable reason codes.

The codes are part of the dead-letter contract (docs/formats.md): operators filter on
them and metrics count them, so they never change meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

REASONS = {
    "oversized": "payload larger than ingest.max_payload_bytes",
    "bad_topic": "topic does not follow the MQTT contract",
    "not_json": "payload is not (UTF-8) JSON",
    "not_protobuf": "payload is not a Sparkplug B protobuf message",
    "wrong_type": "a field has the wrong JSON type",
    "missing_field": "a required field is absent",
    "not_finite": "value is NaN or infinite",
    "out_of_range": "value outside the sensor's physical range",
    "bad_timestamp": "ts is neither RFC 3339 with offset nor epoch s/ms",
    "ts_future": "ts too far ahead of the bridge clock (ingest.max_future_skew_s)",
    "ts_too_old": "ts older than ingest.max_age_s",
    "bad_quality": "quality is not good, uncertain or bad",
    "unknown_sensor": "sensor not in the plant registry (strict mode)",
    "topic_mismatch": "sensor belongs to another site/unit than the topic says",
    "unknown_unit": "payload unit is not one we know",
    "incompatible_unit": "payload unit cannot be converted to the sensor's unit",
    "unknown_alias": "Sparkplug data uses an alias no birth certificate declared",
}


@dataclass(slots=True)
class Rejection:
    """One rejected payload or batch entry (``index`` is the position in a batch)."""

    reason: str
    message: str
    index: int | None = None


class Reject(Exception):
    """Raised inside a parser, caught at the payload or batch-entry boundary."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
