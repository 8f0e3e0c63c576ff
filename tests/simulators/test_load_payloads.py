"""The load generator's vectorised payloads are the JSON the old per-reading format gave."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from simulators.load import sensor_id
from simulators.load_payloads import BatchRenderer, SingleRenderer

RNG = np.random.default_rng(7)


def _readings(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sensor = RNG.integers(0, 300, n)
    # across a change of the 7 leading digits (every 1,000 s) and of the year
    ts = RNG.integers(1_795_999_990_000, 1_796_000_010_000, n)
    centi = RNG.integers(0, 10_000, n)
    centi[:4] = [0, 5, 999, 9999]  # no leading zero, the widest value
    return sensor, ts, centi


def test_a_gateway_batch_parses_to_the_readings_it_was_given() -> None:
    ids = [sensor_id(k) for k in range(300)]
    sensor, ts, centi = _readings(500)
    body = BatchRenderer.message(BatchRenderer(ids).entries(sensor, ts, centi))
    readings = orjson.loads(body)["readings"]
    assert [r["sensor"] for r in readings] == [ids[k] for k in sensor]
    assert [r["ts"] for r in readings] == ts.tolist()
    # the same floats as the old format's ``value_of``: (seq % 10_000) / 100
    assert [r["value"] for r in readings] == (centi / 100).tolist()


def test_single_readings_parse_to_their_ts_and_value() -> None:
    _sensor, ts, centi = _readings(200)
    payloads = SingleRenderer().render(ts, centi)
    docs = [orjson.loads(p) for p in payloads]
    assert [d["ts"] for d in docs] == ts.tolist()
    assert [d["value"] for d in docs] == (centi / 100).tolist()
    assert payloads[0] == f'{{"ts":{ts[0]},"value": 0.00}}'.encode()


def test_a_batch_of_one_entry_and_an_empty_window() -> None:
    renderer = BatchRenderer([sensor_id(0)])
    one = renderer.entries(np.array([0]), np.array([1_795_000_000_123]), np.array([1234]))
    assert BatchRenderer.message(one) == (
        b'{"readings":[{"sensor":"LOAD-000000","ts":1795000000123,"value":12.34}]}'
    )
    assert SingleRenderer().render(np.array([], np.int64), np.array([], np.int64)) == []


@pytest.mark.parametrize(
    ("ts", "centi", "error"),
    [
        (999_999_999_999, 1, "13 digits"),
        (10_000_000_000_000, 1, "13 digits"),
        (1_795_000_000_000, 10_000, "0 .. 99.99"),
        (1_795_000_000_000, -1, "0 .. 99.99"),
    ],
)
def test_what_the_fixed_width_cannot_hold_is_refused(ts: int, centi: int, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        SingleRenderer().render(np.array([ts]), np.array([centi]))


def test_sensor_ids_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        BatchRenderer(["LOAD-000001", "X"])
