"""Parse one JSON MQTT message (single reading or gateway batch) into the batcher.

Bad input is data here, not an exception: every way a payload can be wrong maps to a
stable reason code (ingest/rejection.py) that goes to the dead-letter topic with the
raw payload. The happy path uses orjson; only a payload orjson refuses is looked at
again with the standard library, to tell NaN/Infinity (``not_finite``) from garbage.
"""

from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from common.readings import Quality
from ingest.batching import Batcher
from ingest.rejection import Reject, Rejection
from ingest.sensors import SensorInfo, SensorTable
from ingest.settings import IngestOptions
from ingest.units import UnitError

# Epoch numbers at or above this are milliseconds (1e11 s would be the year 5138,
# 1e11 ms is 1973-03-03: no plant sends either, so the split is unambiguous).
_MS_THRESHOLD = 1e11
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_QUALITY = {"good": 0, "uncertain": 1, "bad": 2}
_UNCERTAIN = int(Quality.UNCERTAIN)


@dataclass(frozen=True, slots=True)
class JsonContext:
    """What parsing needs besides the message: sensors, topic prefix and limits."""

    sensors: SensorTable
    prefix: str
    options: IngestOptions


def parse_json(
    topic: str, payload: bytes, received_ns: int, ctx: JsonContext, out: Batcher
) -> list[Rejection]:
    """Add the readings of one message to ``out``; return the rejections."""
    rejections: list[Rejection] = []
    try:
        limit = ctx.options.max_payload_bytes
        if len(payload) > limit:
            raise Reject("oversized", f"payload of {len(payload)} bytes exceeds {limit}")
        site, unit, sensor = _split_topic(topic, ctx.prefix)
        doc = _load(payload)
        opts = ctx.options
        # the accepted timestamp window, once per message rather than once per reading
        window = (
            received_ns - int(opts.max_age_s * 1e9),
            received_ns + int(opts.max_future_skew_s * 1e9),
            received_ns,
        )
        if sensor is not None:
            _accept(doc, sensor, site, unit, window, ctx, out)
            return rejections
        readings = doc.get("readings")
        if not isinstance(readings, list) or not readings:
            raise Reject("missing_field", "a batch needs a non-empty 'readings' list")
        if fast_batch(readings, site, unit, window, ctx, out):
            return rejections
        for i, item in enumerate(readings):
            try:
                if not isinstance(item, dict):
                    raise Reject("wrong_type", "each batch entry must be an object")
                sid = item.get("sensor")
                if not isinstance(sid, str):
                    raise Reject("missing_field", "batch entry needs a 'sensor' string")
                _accept(item, sid, site, unit, window, ctx, out)
            except Reject as rej:
                rejections.append(Rejection(rej.reason, rej.message, i))
    except Reject as rej:
        rejections.append(Rejection(rej.reason, rej.message))
    return rejections


_FAST_KEYS = frozenset({"sensor", "ts", "value", "quality"})
_FIELDS = operator.itemgetter("sensor", "ts", "value")
_STR = {str}
_INT = {int}
_NUMBER = {float, int}


def fast_batch(
    readings: list[Any],
    site: str,
    unit: str,
    window: tuple[int, int, int],
    ctx: JsonContext,
    out: Batcher,
) -> bool:
    """Accept a whole gateway batch with array checks, if every entry is plainly valid.

    Returns False (and adds nothing) as soon as anything is unusual: the entry-by-entry
    path then decides, with a reason for each bad entry. So both paths accept exactly
    the same readings (tests/ingest/test_parse_json.py checks it on random batches).
    Every per-entry step is a ``map`` over a C function (no Python code per reading):
    at 50k readings/s this function was the bridge's largest cost.
    """
    index = ctx.sensors.unit_index(site, unit)
    if index is None:
        return False
    try:
        # one set of every entry's field names: an entry that is not an object fails
        # here (an int raises, a str adds its letters) or at the itemgetter below
        if not set().union(*readings) <= _FAST_KEYS:
            return False
        sids, tss, vals = zip(*map(_FIELDS, readings), strict=True)
        # the exact classes: bool is an int subclass, and a str value must not convert
        if set(map(type, sids)) != _STR or set(map(type, tss)) != _INT:
            return False
        if not set(map(type, vals)) <= _NUMBER:
            return False
        n = len(sids)
        pos = np.fromiter(map(index.position.__getitem__, sids), np.intp, n)
        value = np.array(vals, dtype=np.float64)
        ts_ms = np.array(tss, dtype=np.int64)
    except (KeyError, TypeError, ValueError, OverflowError):
        return False
    oldest, newest, received_ns = window
    # NaN fails both comparisons; an infinite value fails them as the registry's
    # ranges are finite (checked when the UnitIndex is built)
    if not ((index.lo[pos] <= value) & (value <= index.hi[pos])).all():
        return False
    first, last = int(ts_ms.min()), int(ts_ms.max())
    if first < _MS_THRESHOLD or last > 1e14:
        return False
    ts = ts_ms * 1_000_000
    if first * 1_000_000 < oldest or last * 1_000_000 > newest:
        return False
    quality = None
    if sum(map(len, readings)) != 3 * n:  # some entries carry a quality
        codes = [
            _QUALITY.get(q, -1) if (q := item.get("quality", "good")).__class__ is str else -1
            for item in readings
        ]
        if -1 in codes:
            return False
        quality = np.array(codes, np.uint8)
    out.extend(unit, sids, ts, value, quality, received_ns)
    return True


def _split_topic(topic: str, prefix: str) -> tuple[str, str, str | None]:
    rest = topic[len(prefix) + 1 :].split("/") if topic.startswith(prefix + "/") else []
    if len(rest) == 3 and all(rest):
        return rest[0], rest[1], rest[2]
    if len(rest) == 2 and all(rest):
        return rest[0], rest[1], None
    raise Reject("bad_topic", f"topic {topic!r} is not {prefix}/<site>/<unit>[/<sensor>]")


def _load(payload: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        doc = _load_slow(payload)
    if not isinstance(doc, dict):
        raise Reject("wrong_type", "payload must be a JSON object")
    return doc


def _load_slow(payload: bytes) -> Any:
    """Classify what orjson refused: NaN/Infinity, huge integers, or not JSON at all."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Reject("not_json", f"payload is not UTF-8: {exc.reason}") from exc
    try:
        return json.loads(text, parse_constant=_no_constant)
    except Reject:
        raise
    except (ValueError, RecursionError) as exc:
        raise Reject("not_json", f"payload is not JSON: {str(exc)[:200]}") from exc


def _no_constant(name: str) -> float:
    raise Reject("not_finite", f"value {name} is not a finite number")


def _sensor(sensor_id: str, site: str, unit: str, ctx: JsonContext) -> SensorInfo:
    info = ctx.sensors.get(sensor_id)
    if info is None:
        if not ctx.sensors.auto_register:
            raise Reject("unknown_sensor", f"sensor {sensor_id!r} is not in the plant registry")
        if not 0 < len(sensor_id) <= 64:
            raise Reject("wrong_type", "sensor id must be 1 to 64 characters")
        info = ctx.sensors.register(sensor_id, site, unit)
    if info.site != site or info.unit != unit:
        raise Reject(
            "topic_mismatch",
            f"sensor {sensor_id!r} belongs to {info.site}/{info.unit}, not {site}/{unit}",
        )
    return info


def _accept(
    doc: dict[str, Any],
    sensor_id: str,
    site: str,
    unit: str,
    window: tuple[int, int, int],
    ctx: JsonContext,
    out: Batcher,
) -> None:
    info = _sensor(sensor_id, site, unit, ctx)
    if "value" not in doc:
        raise Reject("missing_field", "reading has no 'value'")
    raw = doc["value"]
    if raw.__class__ is not float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise Reject("wrong_type", f"'value' must be a number, got {type(raw).__name__}")
        try:
            raw = float(raw)
        except OverflowError as exc:
            raise Reject("not_finite", "'value' is too large for a float") from exc
    value: float = raw
    if not math.isfinite(value):
        raise Reject("not_finite", "'value' is not a finite number")
    payload_unit = doc.get("unit")
    if payload_unit is not None:
        if not isinstance(payload_unit, str):
            raise Reject("wrong_type", "'unit' must be a string")
        try:
            value = info.convert(value, payload_unit)
        except UnitError as exc:
            raise Reject(exc.reason, f"{sensor_id}: {exc.message}") from exc
    if not info.lo <= value <= info.hi:
        raise Reject(
            "out_of_range",
            f"{value:g} {info.eng_unit} is outside the physical range "
            f"[{info.lo:g}, {info.hi:g}] of {sensor_id}",
        )
    ts_ns = timestamp_ns(doc.get("ts"))
    oldest, newest, received_ns = window
    if ts_ns > newest:
        skew = ctx.options.max_future_skew_s
        raise Reject("ts_future", f"timestamp is more than {skew:g} s ahead")
    if ts_ns < oldest:
        raise Reject("ts_too_old", f"timestamp is more than {ctx.options.max_age_s:g} s old")
    quality_name = doc.get("quality", "good")
    quality = _QUALITY.get(quality_name) if isinstance(quality_name, str) else None
    if quality is None:
        raise Reject(
            "bad_quality", f"'quality' must be good, uncertain or bad, got {quality_name!r}"
        )
    if info.auto and quality < _UNCERTAIN:
        quality = _UNCERTAIN
    out.add(info.unit, sensor_id, ts_ns, value, quality, received_ns)


def timestamp_ns(ts: Any) -> int:
    """RFC 3339 string, or epoch seconds (< 1e11) / milliseconds (>= 1e11) as a number."""
    if ts is None:
        raise Reject("missing_field", "reading has no 'ts'")
    if ts.__class__ is int and ts >= _MS_THRESHOLD:
        return int(ts) * 1_000_000  # the common case first: integer epoch ms
    if isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError as exc:
            raise Reject("bad_timestamp", f"'ts' {ts[:64]!r} is not RFC 3339") from exc
        if parsed.tzinfo is None:
            raise Reject("bad_timestamp", f"'ts' {ts[:64]!r} has no UTC offset")
        delta = parsed - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts) or ts < 0:
        raise Reject("bad_timestamp", f"'ts' must be RFC 3339 or epoch s/ms, got {ts!r:.64}")
    if ts > 1e14:  # beyond year 5138 even in ms: also keeps int64 from overflowing
        raise Reject("bad_timestamp", f"'ts' {ts!r:.64} is not a plausible epoch time")
    if ts >= _MS_THRESHOLD:
        return round(ts * 1000) * 1000
    return ts * 1_000_000_000 if isinstance(ts, int) else round(ts * 1_000_000) * 1000
