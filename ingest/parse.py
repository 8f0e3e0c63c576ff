"""Turn one MQTT message into accepted readings and dead letters with reasons.

Bad input is data here, not an exception: every way a payload can be wrong maps to a
stable reason code that goes to the dead-letter topic with the raw payload.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.readings import QUALITY_NAMES, Quality
from common.registry import Registry, SensorRef
from ingest.settings import IngestOptions

# Epoch numbers at or above this are milliseconds (1e11 s would be the year 5138).
_MS_THRESHOLD = 1e11
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Rejection:
    reason: str
    message: str
    index: int | None = None


@dataclass(slots=True)
class Parsed:
    """Readings accepted from one message (parallel lists) and the rejections."""

    sensor: list[SensorRef] = field(default_factory=list)
    ts_ns: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    quality: list[int] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


class _Reject(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse_message(
    topic: str,
    payload: bytes,
    received_ns: int,
    registry: Registry,
    prefix: str,
    options: IngestOptions,
) -> Parsed:
    """Parse a JSON single reading or gateway batch published on ``topic``."""
    out = Parsed()
    try:
        if len(payload) > options.max_payload_bytes:
            raise _Reject(
                "oversized", f"payload of {len(payload)} bytes exceeds {options.max_payload_bytes}"
            )
        site, unit, sensor = _split_topic(topic, prefix)
        doc = _load_json(payload)
        if sensor is not None:
            _accept(out, doc, sensor, site, unit, received_ns, registry, options)
        else:
            readings = doc.get("readings")
            if not isinstance(readings, list) or not readings:
                raise _Reject("missing_field", "a batch needs a non-empty 'readings' list")
            for i, item in enumerate(readings):
                try:
                    if not isinstance(item, dict):
                        raise _Reject("wrong_type", "each batch entry must be an object")
                    sid = item.get("sensor")
                    if not isinstance(sid, str):
                        raise _Reject("missing_field", "batch entry needs a 'sensor' string")
                    _accept(out, item, sid, site, unit, received_ns, registry, options)
                except _Reject as rej:
                    out.rejections.append(Rejection(rej.reason, rej.message, i))
    except _Reject as rej:
        out.rejections.append(Rejection(rej.reason, rej.message))
    return out


def _split_topic(topic: str, prefix: str) -> tuple[str, str, str | None]:
    rest = topic[len(prefix) + 1 :].split("/") if topic.startswith(prefix + "/") else []
    if len(rest) == 3 and all(rest):
        return rest[0], rest[1], rest[2]
    if len(rest) == 2 and all(rest):
        return rest[0], rest[1], None
    raise _Reject("bad_topic", f"topic {topic!r} is not {prefix}/<site>/<unit>[/<sensor>]")


def _load_json(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise _Reject("not_json", f"payload is not UTF-8: {exc.reason}") from exc
    except _Reject:
        raise
    except ValueError as exc:
        raise _Reject("not_json", f"payload is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise _Reject("wrong_type", "payload must be a JSON object")
    return doc


def _no_constant(name: str) -> float:
    raise _Reject("not_finite", f"value {name} is not a finite number")


def _accept(
    out: Parsed,
    doc: dict[str, Any],
    sensor_id: str,
    site: str,
    unit: str,
    received_ns: int,
    registry: Registry,
    options: IngestOptions,
) -> None:
    ref = registry.sensor(sensor_id)
    if ref is None:
        raise _Reject("unknown_sensor", f"sensor {sensor_id!r} is not in the plant registry")
    if ref.site.id != site or ref.unit.id != unit:
        raise _Reject(
            "topic_mismatch",
            f"sensor {sensor_id!r} belongs to {ref.site.id}/{ref.unit.id}, not {site}/{unit}",
        )
    if "value" not in doc:
        raise _Reject("missing_field", "reading has no 'value'")
    value = doc["value"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject("wrong_type", f"'value' must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise _Reject("not_finite", "'value' is not a finite number")
    lo, hi = ref.sensor.range
    if not lo <= value <= hi:
        raise _Reject(
            "out_of_range",
            f"{value} {ref.sensor.unit} is outside the physical range [{lo}, {hi}] of {sensor_id}",
        )
    ts_ns = _timestamp_ns(doc.get("ts"))
    if ts_ns > received_ns + options.max_future_skew_s * 1e9:
        raise _Reject("ts_future", f"timestamp is more than {options.max_future_skew_s:g} s ahead")
    if ts_ns < received_ns - options.max_age_s * 1e9:
        raise _Reject("ts_too_old", f"timestamp is more than {options.max_age_s:g} s old")
    quality = doc.get("quality", "good")
    if quality not in QUALITY_NAMES:
        raise _Reject("bad_quality", f"'quality' must be good, uncertain or bad, got {quality!r}")
    out.sensor.append(ref)
    out.ts_ns.append(ts_ns)
    out.value.append(value)
    out.quality.append(int(QUALITY_NAMES[quality] if quality else Quality.GOOD))


def _timestamp_ns(ts: Any) -> int:
    """RFC 3339 string, or epoch seconds (< 1e11) / milliseconds (>= 1e11) as a number."""
    if ts is None:
        raise _Reject("missing_field", "reading has no 'ts'")
    if isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError as exc:
            raise _Reject("bad_timestamp", f"'ts' {ts!r} is not RFC 3339") from exc
        if parsed.tzinfo is None:
            raise _Reject("bad_timestamp", f"'ts' {ts!r} has no UTC offset")
        delta = parsed - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts) or ts < 0:
        raise _Reject("bad_timestamp", f"'ts' must be RFC 3339 or epoch s/ms, got {ts!r}")
    if ts >= _MS_THRESHOLD:
        return ts * 1_000_000 if isinstance(ts, int) else round(ts * 1000) * 1000
    return ts * 1_000_000_000 if isinstance(ts, int) else round(ts * 1_000_000) * 1000
