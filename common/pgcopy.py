"""Build PostgreSQL binary COPY payloads from numpy columns without a loop per row.

Fixed-width columns are written with one vectorised scatter each; text columns are
dictionary-encoded (a code per row plus the distinct strings), so the only Python loop
runs over distinct strings (sensor ids), never over rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
# PostgreSQL timestamps count microseconds from 2000-01-01 UTC.
PG_EPOCH_US = 946_684_800_000_000


@dataclass(frozen=True, slots=True)
class Fixed:
    """A fixed-width column; ``dtype`` is big-endian (e.g. '>f8'); NaN/masked -> NULL."""

    values: np.ndarray
    dtype: str
    null: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Text:
    """A text column as codes into a list of distinct strings."""

    codes: np.ndarray
    strings: list[str]


Column = Fixed | Text


def timestamptz(ns: np.ndarray) -> Fixed:
    """Epoch nanoseconds as a timestamptz column."""
    return Fixed(np.asarray(ns, np.int64) // 1000 - PG_EPOCH_US, ">i8")


def float8(values: np.ndarray) -> Fixed:
    """A double precision column; NaN is written as NULL."""
    values = np.asarray(values, np.float64)
    return Fixed(values, ">f8", np.isnan(values))


def build(columns: list[Column], n_rows: int) -> bytes:
    """The complete binary COPY payload (header, rows, trailer)."""
    if n_rows == 0:
        return HEADER + TRAILER
    widths = np.zeros((len(columns), n_rows), np.int64)  # bytes of each field incl. length
    encoded: list[list[bytes]] = []
    for c, col in enumerate(columns):
        if isinstance(col, Fixed):
            size = np.dtype(col.dtype).itemsize
            widths[c] = 4 + (size if col.null is None else np.where(col.null, 0, size))
            encoded.append([])
        else:
            raw = [s.encode() for s in col.strings]
            lengths = np.array([len(b) for b in raw], np.int64)
            widths[c] = 4 + lengths[col.codes]
            encoded.append(raw)
    row_len = 2 + widths.sum(axis=0)
    row_start = np.concatenate(([0], np.cumsum(row_len)[:-1]))
    buf = np.zeros(int(row_len.sum()), np.uint8)
    field_count = np.array([len(columns)], ">i2").view(np.uint8)
    _scatter(buf, row_start, np.broadcast_to(field_count, (n_rows, 2)))
    offset = row_start + 2
    for c, col in enumerate(columns):
        if isinstance(col, Fixed):
            _write_fixed(buf, offset, col, n_rows)
        else:
            _write_text(buf, offset, col, encoded[c])
        offset = offset + widths[c]
    return HEADER + buf.tobytes() + TRAILER


def _scatter(buf: np.ndarray, starts: np.ndarray, rows: np.ndarray) -> None:
    """Write row ``i`` of ``rows`` at ``buf[starts[i]:]``."""
    width = rows.shape[1]
    if width:
        buf[starts[:, None] + np.arange(width)] = rows


def _write_fixed(buf: np.ndarray, offset: np.ndarray, col: Fixed, n_rows: int) -> None:
    size = np.dtype(col.dtype).itemsize
    rec = np.empty(n_rows, dtype=[("len", ">i4"), ("val", col.dtype)])
    rec["len"] = size
    rec["val"] = col.values
    rows = rec.view(np.uint8).reshape(n_rows, 4 + size)
    if col.null is None or not col.null.any():
        _scatter(buf, offset, rows)
        return
    keep = ~col.null
    _scatter(buf, offset[keep], rows[keep])
    minus_one = np.array([-1], ">i4").view(np.uint8)
    _scatter(buf, offset[col.null], np.broadcast_to(minus_one, (int(col.null.sum()), 4)))


def _write_text(buf: np.ndarray, offset: np.ndarray, col: Text, raw: list[bytes]) -> None:
    order = np.argsort(col.codes, kind="stable")
    bounds = np.searchsorted(col.codes[order], np.arange(len(raw) + 1))
    for code, data in enumerate(raw):  # one iteration per distinct string, not per row
        rows = order[bounds[code] : bounds[code + 1]]
        if len(rows) == 0:
            continue
        field = np.frombuffer(np.array([len(data)], ">i4").tobytes() + data, np.uint8)
        _scatter(buf, offset[rows], np.broadcast_to(field, (len(rows), len(field))))
