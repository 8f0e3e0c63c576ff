"""The columnar batch of readings that flows on the Kafka ``readings`` topic.

A batch holds many readings of one unit as plain numpy arrays. On the wire it is an
Apache Arrow IPC stream (compact, self-describing, versioned through schema metadata)
with the sensor column dictionary-encoded, so a consumer maps each distinct sensor id
once and then works on integer codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import pyarrow as pa

from common.errors import ChemWatchError

FORMAT_NAME = b"chemwatch.readings"
FORMAT_VERSION = b"1"


class Quality(IntEnum):
    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


QUALITY_NAMES = {q.name.lower(): q for q in Quality}

_SCHEMA = pa.schema(
    [
        pa.field("sensor", pa.dictionary(pa.int32(), pa.string())),
        pa.field("ts_ns", pa.int64()),
        pa.field("ingest_ns", pa.int64()),
        pa.field("value", pa.float64()),
        pa.field("quality", pa.uint8()),
    ]
)


class BatchFormatError(ChemWatchError):
    """A Kafka record is not a readings batch this version understands."""


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Readings of one unit: ``sensor_ids[sensor_code[i]]`` is the sensor of reading i."""

    unit_id: str
    sensor_ids: np.ndarray  # object array of distinct sensor ids
    sensor_code: np.ndarray  # int32, one per reading
    ts_ns: np.ndarray  # int64 epoch ns, source time
    ingest_ns: np.ndarray  # int64 epoch ns, when the bridge accepted it
    value: np.ndarray  # float64
    quality: np.ndarray  # uint8 (Quality)

    def __len__(self) -> int:
        return len(self.ts_ns)

    @classmethod
    def from_columns(
        cls,
        unit_id: str,
        sensors: list[str],
        ts_ns: np.ndarray,
        ingest_ns: np.ndarray,
        value: np.ndarray,
        quality: np.ndarray,
    ) -> ReadingBatch:
        """Build a batch from a sensor id per reading (dictionary-encodes them)."""
        ids, codes = np.unique(np.asarray(sensors, dtype=object), return_inverse=True)
        return cls(
            unit_id,
            ids,
            codes.astype(np.int32),
            np.asarray(ts_ns, np.int64),
            np.asarray(ingest_ns, np.int64),
            np.asarray(value, np.float64),
            np.asarray(quality, np.uint8),
        )

    def sensors(self) -> np.ndarray:
        """Sensor id per reading (object array)."""
        out: np.ndarray = self.sensor_ids[self.sensor_code]
        return out


def encode_batch(batch: ReadingBatch) -> bytes:
    """Serialise a batch as an Arrow IPC stream (one record batch)."""
    sensor = pa.DictionaryArray.from_arrays(
        pa.array(batch.sensor_code, pa.int32()), pa.array(batch.sensor_ids.tolist(), pa.string())
    )
    record = pa.RecordBatch.from_arrays(
        [
            sensor,
            pa.array(batch.ts_ns, pa.int64()),
            pa.array(batch.ingest_ns, pa.int64()),
            pa.array(batch.value, pa.float64()),
            pa.array(batch.quality, pa.uint8()),
        ],
        schema=_SCHEMA.with_metadata(
            {b"format": FORMAT_NAME, b"version": FORMAT_VERSION, b"unit": batch.unit_id.encode()}
        ),
    )
    sink = pa.BufferOutputStream()
    writer = pa.RecordBatchStreamWriter(sink, record.schema)
    writer.write_batch(record)
    writer.close()
    return bytes(sink.getvalue().to_pybytes())


def decode_batch(data: bytes) -> ReadingBatch:
    """Parse an Arrow IPC readings batch; raise BatchFormatError on anything else."""
    try:
        return _decode(data)
    except UnicodeDecodeError as exc:  # field names or metadata of a corrupt batch
        raise BatchFormatError(f"corrupt readings batch: {exc}") from exc


def _decode(data: bytes) -> ReadingBatch:
    try:
        reader = pa.ipc.open_stream(data)
        batches = list(reader)  # the bridge writes one record batch; others may write more
    except (pa.ArrowException, OSError) as exc:
        raise BatchFormatError(f"not an Arrow IPC stream: {exc}") from exc
    schema = reader.schema
    meta = schema.metadata or {}
    if meta.get(b"format") != FORMAT_NAME:
        raise BatchFormatError(f"unknown batch format {meta.get(b'format')!r}")
    if meta.get(b"version") != FORMAT_VERSION:
        raise BatchFormatError(f"unsupported batch version {meta.get(b'version')!r}")
    if schema.names != _SCHEMA.names:
        raise BatchFormatError(f"unexpected columns {schema.names}")
    if not schema.remove_metadata().equals(_SCHEMA):
        raise BatchFormatError(f"unexpected column types {schema.types}")
    if len(batches) == 1:
        record = batches[0]
    else:
        table = pa.Table.from_batches(batches, schema).combine_chunks()
        record = table.to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema)
    try:
        # IPC reading checks framing, not contents: a corrupt offset or dictionary index
        # would otherwise crash (or read out of bounds) when the columns are used.
        record.validate(full=True)
    except pa.ArrowException as exc:
        raise BatchFormatError(f"corrupt readings batch: {exc}") from exc
    # columns by position (checked above): much cheaper than by name per call
    sensor, ts_ns, ingest_ns, value, quality = record.columns
    if not isinstance(sensor, pa.DictionaryArray):
        raise BatchFormatError("sensor column must be dictionary-encoded")
    return ReadingBatch(
        unit_id=meta.get(b"unit", b"").decode(),
        sensor_ids=np.array(sensor.dictionary.to_pylist(), dtype=object),
        sensor_code=sensor.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False),
        ts_ns=ts_ns.to_numpy(),
        ingest_ns=ingest_ns.to_numpy(),
        value=value.to_numpy(),
        quality=quality.to_numpy(),
    )
