"""Collect accepted readings per unit and turn them into Kafka records.

Single readings are appended as plain Python scalars to per-unit column lists
(appending to a list is the cheapest thing Python can do per reading); gateway batches
arrive as numpy arrays. One concatenation and one Arrow IPC encode then happen per
unit and flush, not per reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from common.readings import ReadingBatch, encode_batch


@dataclass(slots=True)
class UnitColumns:
    """Readings of one unit; sensors dictionary-encoded as they come.

    Single readings are appended to the column lists; a gateway batch arrives as
    arrays and is kept as one chunk. The lists are closed into a chunk before each
    batch chunk, so readings keep their arrival order.
    """

    codes: dict[str, int] = field(default_factory=dict)  # sensor id -> code
    sensor_code: list[int] = field(default_factory=list)
    ts_ns: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    quality: list[int] = field(default_factory=list)
    ingest_ns: list[int] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)

    def close_lists(self) -> None:
        """Move the listed single readings into a chunk."""
        if self.ts_ns:
            self.chunks.append(self._list_chunk())
            self.sensor_code, self.ts_ns, self.value = [], [], []
            self.quality, self.ingest_ns = [], []

    def all_chunks(self) -> list[Chunk]:
        """Every reading so far, in arrival order (changes nothing)."""
        return [*self.chunks, self._list_chunk()] if self.ts_ns else self.chunks

    def _list_chunk(self) -> Chunk:
        return Chunk(
            np.array(self.sensor_code, np.int32),
            np.array(self.ts_ns, np.int64),
            np.array(self.ingest_ns, np.int64),
            np.array(self.value, np.float64),
            np.array(self.quality, np.uint8),
        )

    def code_of(self, sensors: Sequence[str]) -> np.ndarray:
        """The code of each sensor id (new ids get the next codes)."""
        codes = self.codes
        new = dict.fromkeys(sensors).keys() - codes.keys()  # a set: usually empty
        if new:
            codes.update(zip(sorted(new), range(len(codes), len(codes) + len(new)), strict=True))
        return np.fromiter(map(codes.__getitem__, sensors), np.int32, len(sensors))


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive readings of one unit as arrays (codes of UnitColumns.codes)."""

    sensor_code: np.ndarray
    ts_ns: np.ndarray
    ingest_ns: np.ndarray
    value: np.ndarray
    quality: np.ndarray


class Batcher:
    """Accepted readings of one flush, grouped by unit (the Kafka key)."""

    def __init__(self) -> None:
        self.units: dict[str, UnitColumns] = {}
        self.count = 0

    def columns(self, unit: str) -> UnitColumns:
        """The columns of ``unit`` (created on first use)."""
        cols = self.units.get(unit)
        if cols is None:
            cols = self.units[unit] = UnitColumns()
        return cols

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
        sensors: Sequence[str],
        ts_ns: np.ndarray,
        values: np.ndarray,
        quality: np.ndarray | None,
        ingest_ns: int,
    ) -> None:
        """Append many readings of one unit at once (the gateway-batch fast path).

        ``quality`` None means all good.
        """
        cols = self.columns(unit)
        cols.close_lists()
        n = len(ts_ns)
        cols.chunks.append(
            Chunk(
                cols.code_of(sensors),
                np.asarray(ts_ns, np.int64),
                np.full(n, ingest_ns, np.int64),
                np.asarray(values, np.float64),
                np.zeros(n, np.uint8) if quality is None else np.asarray(quality, np.uint8),
            )
        )
        self.count += n

    def batches(self, max_readings: int = 10_000) -> list[ReadingBatch]:
        """One ReadingBatch per unit (split so no record exceeds ``max_readings``)."""
        out: list[ReadingBatch] = []
        for unit, cols in self.units.items():
            ids = np.array(list(cols.codes), dtype=object)
            chunks = cols.all_chunks()
            whole = (
                chunks[0]
                if len(chunks) == 1
                else Chunk(
                    *(np.concatenate([getattr(c, f.name) for c in chunks]) for f in fields(Chunk))
                )
            )
            for start in range(0, len(whole.ts_ns), max_readings):
                part = slice(start, start + max_readings)
                out.append(
                    ReadingBatch(
                        unit,
                        ids,
                        whole.sensor_code[part],
                        whole.ts_ns[part],
                        whole.ingest_ns[part],
                        whole.value[part],
                        whole.quality[part],
                    )
                )
        return out

    def records(self, max_readings: int = 10_000) -> list[tuple[bytes, bytes, int, str]]:
        """(key, value, readings, unit) per Kafka record of the readings topic."""
        return [
            (b.unit_id.encode(), encode_batch(b), len(b), b.unit_id)
            for b in self.batches(max_readings)
        ]
