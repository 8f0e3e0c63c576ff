"""Binary COPY payloads: parsed back, every row is there with its fields."""

from __future__ import annotations

import struct

import numpy as np

from common import pgcopy


def parse(payload: bytes) -> list[tuple[bytes | None, ...]]:
    """Rows of a binary COPY payload as raw field bytes (None for NULL)."""
    assert payload[:11] == b"PGCOPY\n\xff\r\n\x00"
    pos, rows = 19, []
    while True:
        (count,) = struct.unpack_from(">h", payload, pos)
        pos += 2
        if count == -1:
            assert pos == len(payload)
            return rows
        fields: list[bytes | None] = []
        for _ in range(count):
            (length,) = struct.unpack_from(">i", payload, pos)
            pos += 4
            if length == -1:
                fields.append(None)
            else:
                fields.append(payload[pos : pos + length])
                pos += length
        rows.append(tuple(fields))


def test_rows_of_mixed_widths_and_nulls_round_trip() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    strings = ["A", "BB-2", "Ünïcode-333", "", "CCCC"]  # "" is a valid, empty text
    codes = rng.integers(0, len(strings), n)
    units = ["U1", "U22"]
    ucodes = rng.integers(0, 2, n)
    values = rng.normal(0, 1, n)
    values[rng.random(n) < 0.2] = np.nan
    ts = rng.integers(0, 10**18, n)
    payload = pgcopy.build(
        [
            pgcopy.timestamptz(ts),
            pgcopy.Text(codes, strings),
            pgcopy.float8(values),
            pgcopy.Text(ucodes, units),
            pgcopy.Fixed(np.arange(n, dtype=np.int16), ">i2"),
        ],
        n,
    )
    got = parse(payload)
    assert len(got) == n
    want = {
        (
            struct.pack(">q", int(ts[i]) // 1000 - pgcopy.PG_EPOCH_US),
            strings[codes[i]].encode(),
            None if np.isnan(values[i]) else struct.pack(">d", values[i]),
            units[ucodes[i]].encode(),
            struct.pack(">h", i),
        )
        for i in range(n)
    }
    assert set(got) == want  # the last field is the row number: every row once
    # Rows of one width group (text lengths, NULL or not) keep their given order.
    groups: dict[tuple[int, int, bool], list[int]] = {}
    for r in got:
        key = (len(r[1] or b""), len(r[3] or b""), r[2] is None)
        groups.setdefault(key, []).append(struct.unpack(">h", r[4])[0])
    assert len(groups) > 10
    for order in groups.values():
        assert order == sorted(order)


def test_empty_payload() -> None:
    assert pgcopy.build([pgcopy.float8(np.array([]))], 0) == pgcopy.HEADER + pgcopy.TRAILER


def test_text_codes_into_a_large_list_use_only_their_strings() -> None:
    # a worker passes its whole plant's ids (up to 100k) while a batch names a few
    strings = [f"S{i}-Ω" * (1 + i % 3) for i in range(50_000)]
    codes = np.array([49_999, 7, 7, 12_345, 0, 49_999])
    got = parse(pgcopy.build([pgcopy.Text(codes, strings)], len(codes)))
    assert sorted(row[0] for row in got) == sorted(strings[c].encode() for c in codes)
