import numpy as np
import pyarrow as pa
import pytest

from common.readings import BatchFormatError, ReadingBatch, decode_batch, encode_batch


def make_batch(n: int = 50) -> ReadingBatch:
    rng = np.random.default_rng(3)
    sensors = [f"S{i % 7}" for i in range(n)]
    values = rng.normal(size=n)
    values[3] = np.nan
    return ReadingBatch.from_columns(
        "TK-101",
        sensors,
        np.arange(n, dtype=np.int64) * 10**9,
        np.arange(n) + 5,
        values,
        rng.integers(0, 3, n),
    )


def test_round_trip_keeps_every_column() -> None:
    batch = make_batch()
    back = decode_batch(encode_batch(batch))
    assert back.unit_id == "TK-101"
    assert list(back.sensors()) == list(batch.sensors())
    np.testing.assert_array_equal(back.ts_ns, batch.ts_ns)
    np.testing.assert_array_equal(back.ingest_ns, batch.ingest_ns)
    np.testing.assert_array_equal(back.value, batch.value)  # NaN == NaN here
    np.testing.assert_array_equal(back.quality, batch.quality)


def test_sensor_ids_are_dictionary_encoded() -> None:
    batch = make_batch(700)
    assert len(batch.sensor_ids) == 7
    assert batch.sensor_code.dtype == np.int32


def test_garbage_is_rejected_with_a_reason() -> None:
    with pytest.raises(BatchFormatError, match="not an Arrow IPC stream"):
        decode_batch(b'{"value": 1}')


def test_other_arrow_payloads_are_rejected() -> None:
    table = pa.table({"x": [1, 2]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(BatchFormatError, match="unknown batch format"):
        decode_batch(sink.getvalue().to_pybytes())
