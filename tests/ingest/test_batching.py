"""The batcher: readings keep their arrival order per unit, whichever path added them."""

from __future__ import annotations

import numpy as np

from common.readings import decode_batch
from ingest.batching import Batcher


def _flat(batcher: Batcher, max_readings: int = 10_000) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for b in batcher.batches(max_readings):
        out.setdefault(b.unit_id, []).extend(
            zip(
                b.sensors().tolist(),
                b.ts_ns.tolist(),
                b.value.tolist(),
                b.quality.tolist(),
                b.ingest_ns.tolist(),
                strict=True,
            )
        )
    return out


def test_singles_and_batches_interleave_in_arrival_order() -> None:
    b = Batcher()
    b.add("U1", "A", 1, 1.0, 0, 100)
    b.extend("U1", ["B", "A", "C"], np.array([2, 3, 4]), np.array([2.0, 3.0, 4.0]), None, 200)
    b.add("U2", "X", 5, 5.0, 1, 300)
    b.add("U1", "C", 6, 6.0, 2, 400)
    b.extend("U1", ["D"], np.array([7]), np.array([7.0]), np.array([1], np.uint8), 500)
    assert b.count == 7
    expected = {
        "U1": [
            ("A", 1, 1.0, 0, 100),
            ("B", 2, 2.0, 0, 200),
            ("A", 3, 3.0, 0, 200),
            ("C", 4, 4.0, 0, 200),
            ("C", 6, 6.0, 2, 400),
            ("D", 7, 7.0, 1, 500),
        ],
        "U2": [("X", 5, 5.0, 1, 300)],
    }
    assert _flat(b) == expected
    # reading the batches changes nothing: a second read sees the same, and a reading
    # added afterwards still comes after the earlier ones
    assert _flat(b) == expected
    b.add("U1", "A", 8, 8.0, 0, 600)
    assert _flat(b)["U1"] == [*expected["U1"], ("A", 8, 8.0, 0, 600)]


def test_records_split_at_the_limit_and_decode_to_the_same_readings() -> None:
    b = Batcher()
    sensors = [f"S{i % 7}" for i in range(25)]
    b.extend("U", sensors, np.arange(25), np.arange(25) / 2, None, 9)
    records = b.records(max_readings=10)
    assert [n for _, _, n, _ in records] == [10, 10, 5]
    decoded = [decode_batch(value) for _, value, _, _ in records]
    assert [s for d in decoded for s in d.sensors().tolist()] == sensors
    assert [t for d in decoded for t in d.ts_ns.tolist()] == list(range(25))
    assert {k for k, _, _, _ in records} == {b"U"}
