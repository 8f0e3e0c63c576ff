"""Collect accepted readings per unit and turn them into Kafka records.

The parsers append plain Python scalars to per-unit column lists (appending to a list
is the cheapest thing Python can do per reading); one numpy conversion and one Arrow
IPC encode then happen per unit and flush, not per reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from common.readings import ReadingBatch, encode_batch


@dataclass(slots=True)
class UnitColumns:
    """Column lists of the readings of one unit; sensors dictionary-encoded as they come."""

    codes: dict[str, int] = field(default_factory=dict)  # sensor id -> code
    sensor_code: list[int] = field(default_factory=list)
    ts_ns: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    quality: list[int] = field(default_factory=list)
    ingest_ns: list[int] = field(default_factory=list)


class Batcher:
    """Accepted readings of one flush, grouped by unit (the Kafka key)."""

    def __init__(self) -> None:
        self.units: dict[str, UnitColumns] = {}
        self.count = 0

    def columns(self, unit: str) -> UnitColumns:
        """The column lists of ``unit`` (created on first use)."""
        cols = self.units.get(unit)
        if cols is None:
            cols = self.units[unit] = UnitColumns()
        return cols

    def sensors(self, unit: str) -> list[str]:
        """Sensor id per reading of ``unit`` (for tests and tools; the hot path uses codes)."""
        cols = self.units[unit]
        ids = list(cols.codes)
        return [ids[c] for c in cols.sensor_code]

    def add(
        self, unit: str, sensor: str, ts_ns: int, value: float, quality: int, ingest_ns: int
    ) -> None:
        """Append one reading."""
        cols = self.columns(unit)
        codes = cols.codes
        code = codes.get(sensor)
        if code is None:
            code = codes[sensor] = len(codes)
        cols.sensor_code.append(code)
        cols.ts_ns.append(ts_ns)
        cols.value.append(value)
        cols.quality.append(quality)
        cols.ingest_ns.append(ingest_ns)
        self.count += 1

    def extend(
        self,
        unit: str,
        sensors: list[str],
        ts_ns: list[int],
        values: list[float],
        quality: list[int],
        ingest_ns: int,
    ) -> None:
        """Append many readings of one unit at once (the gateway-batch fast path)."""
        cols = self.columns(unit)
        codes = cols.codes
        for sensor in dict.fromkeys(sensors):
            if sensor not in codes:
                codes[sensor] = len(codes)
        cols.sensor_code += [codes[s] for s in sensors]
        cols.ts_ns += ts_ns
        cols.value += values
        cols.quality += quality
        cols.ingest_ns += [ingest_ns] * len(ts_ns)
        self.count += len(ts_ns)

    def batches(self, max_readings: int = 10_000) -> list[ReadingBatch]:
        """One ReadingBatch per unit (split so no record exceeds ``max_readings``)."""
        out: list[ReadingBatch] = []
        for unit, cols in self.units.items():
            ids = np.array(list(cols.codes), dtype=object)
            for start in range(0, len(cols.ts_ns), max_readings):
                end = start + max_readings
                out.append(
                    ReadingBatch(
                        unit,
                        ids,
                        np.array(cols.sensor_code[start:end], np.int32),
                        np.array(cols.ts_ns[start:end], np.int64),
                        np.array(cols.ingest_ns[start:end], np.int64),
                        np.array(cols.value[start:end], np.float64),
                        np.array(cols.quality[start:end], np.uint8),
                    )
                )
        return out

    def records(self, max_readings: int = 10_000) -> list[tuple[bytes, bytes, int, str]]:
        """(key, value, readings, unit) per Kafka record of the readings topic."""
        return [
            (b.unit_id.encode(), encode_batch(b), len(b), b.unit_id)
            for b in self.batches(max_readings)
        ]
