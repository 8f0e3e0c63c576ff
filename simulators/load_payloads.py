"""The load generator's JSON payloads, rendered for a whole window of readings at once.

The generator shares the machine with the pipeline it measures, so every core-second it
spends is taken from what it measures. Formatting JSON reading by reading cost ~1.7 µs a
reading (165 µs per 100-reading gateway message, a fifth of a core at 100k readings/s).
Here every reading's text is a fixed-width row of bytes: the sensor id and the 13 digits
of its millisecond timestamp are copied in as digit columns, and the value is written
``dd.dd`` with a space for a leading zero (JSON allows whitespace before a number). A
window of readings is then one numpy array; a message is a slice of it.
"""

from __future__ import annotations

import functools

import numpy as np

TS_DIGITS = 13  # ms timestamps from 2001-09-09 to 2286-11-20
LOW_DIGITS = 6  # the timestamp's last digits, looked up in a table of 10**6 rows
VALUE_WIDTH = 5  # "dd.dd": a value in hundredths, 0 .. 9999
_ZERO, _SPACE = ord("0"), ord(" ")


def _digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """Each number's last ``width`` decimal digits as ASCII, one row per number."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((numbers[:, None] // powers) % 10 + _ZERO).astype(np.uint8)


@functools.cache
def _low_digits() -> np.ndarray:
    # One gather from this table instead of 13 divisions per reading: the generator
    # renders in bursts after a sleep, where each numpy call runs with cold caches.
    return _digits(np.arange(10**LOW_DIGITS, dtype=np.int64), LOW_DIGITS)


@functools.cache
def _values() -> np.ndarray:
    table = _digits(np.arange(10_000, dtype=np.int64), 4)
    text = np.full((10_000, VALUE_WIDTH), ord("."), np.uint8)
    text[:, :2], text[:, 3:] = table[:, :2], table[:, 2:]
    text[:1000, 0] = _SPACE  # " 5.07": JSON allows whitespace, not a leading zero
    return text


@functools.lru_cache(maxsize=4)
def _high_digits(first: int, last: int) -> np.ndarray:
    # the leading digits change every 1,000 s: computed once per change, not per render
    return _digits(np.arange(first, last + 1), TS_DIGITS - LOW_DIGITS)


def _template(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), np.uint8)


def _fill_ts(rows: np.ndarray, col: int, ts_ms: np.ndarray) -> None:
    if not len(ts_ms):
        return
    high, low = np.divmod(ts_ms, 10**LOW_DIGITS)
    first, last = int(high.min()), int(high.max())  # a window spans one or two
    if first < 10 ** (TS_DIGITS - LOW_DIGITS - 1) or last >= 10 ** (TS_DIGITS - LOW_DIGITS):
        raise ValueError(f"timestamps must have {TS_DIGITS} digits in ms, got {ts_ms.min()}")
    mid = col + TS_DIGITS - LOW_DIGITS
    rows[:, col:mid] = _high_digits(first, last)[high - first]
    rows[:, mid : col + TS_DIGITS] = _low_digits()[low]


def _fill_value(rows: np.ndarray, col: int, centi: np.ndarray) -> None:
    if len(centi) and (centi.min() < 0 or centi.max() > 9999):
        raise ValueError(f"values must be 0 .. 99.99, got {centi.min()}..{centi.max()} (x100)")
    rows[:, col : col + VALUE_WIDTH] = _values()[centi]


class SingleRenderer:
    """``{"ts":<ms>,"value":<v>}``: one reading per MQTT message."""

    _HEAD = '{"ts":'
    _MID = ',"value":'

    def __init__(self) -> None:
        self._row = _template(self._HEAD + "0" * TS_DIGITS + self._MID + "0" * VALUE_WIDTH + "}")
        self._ts_col = len(self._HEAD)
        self._value_col = self._ts_col + TS_DIGITS + len(self._MID)

    def render(self, ts_ms: np.ndarray, centi: np.ndarray) -> list[bytes]:
        """One payload per reading."""
        rows = np.tile(self._row, (len(ts_ms), 1))
        _fill_ts(rows, self._ts_col, ts_ms)
        _fill_value(rows, self._value_col, centi)
        raw, width = rows.tobytes(), rows.shape[1]
        return [raw[i : i + width] for i in range(0, len(raw), width)]


class BatchRenderer:
    """``{"readings":[{"sensor":<id>,"ts":<ms>,"value":<v>},...]}``: gateway batches.

    ``ids`` are the sensor ids readings refer to by index; they must all have the same
    length (the load sensors' ``LOAD-000000`` ids do).
    """

    _HEAD = '{"sensor":"'
    _MID_TS = '","ts":'
    _MID_VALUE = ',"value":'

    def __init__(self, ids: list[str]) -> None:
        widths = {len(i) for i in ids}
        if len(widths) > 1:
            raise ValueError(f"sensor ids must have one length, got lengths {sorted(widths)}")
        width = widths.pop() if widths else 0
        self._ids = np.frombuffer("".join(ids).encode("ascii"), np.uint8).reshape(-1, width)
        entry = (self._HEAD + "-" * width + self._MID_TS + "0" * TS_DIGITS + self._MID_VALUE
                 + "0" * VALUE_WIDTH + "},")  # fmt: skip
        self._row = _template(entry)
        self._id_col = len(self._HEAD)
        self._ts_col = self._id_col + width + len(self._MID_TS)
        self._value_col = self._ts_col + TS_DIGITS + len(self._MID_VALUE)

    def entries(self, sensor: np.ndarray, ts_ms: np.ndarray, centi: np.ndarray) -> np.ndarray:
        """Each reading's entry text (with a trailing comma) as a row of bytes."""
        rows = np.tile(self._row, (len(sensor), 1))
        rows[:, self._id_col : self._id_col + self._ids.shape[1]] = self._ids[sensor]
        _fill_ts(rows, self._ts_col, ts_ms)
        _fill_value(rows, self._value_col, centi)
        return rows

    @staticmethod
    def message(entries: np.ndarray) -> bytes:
        """A gateway batch of the given entry rows."""
        return b'{"readings":[' + entries.tobytes()[:-1] + b"]}"
