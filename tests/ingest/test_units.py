"""Unit conversion: round trips, affine temperature, gauge/absolute separation."""

from __future__ import annotations

import pytest

from ingest.units import INCOMPATIBLE_UNIT, UNKNOWN_UNIT, UnitError, canonical, conversion


@pytest.mark.parametrize(
    ("src", "dst", "value", "expected"),
    [
        ("degC", "K", 0.0, 273.15),
        ("degF", "degC", 212.0, 100.0),
        ("K", "degF", 0.0, -459.67),
        ("bar", "kPa", 1.0, 100.0),
        ("MPa", "bar", 1.77, 17.7),
        ("psi", "kPa", 14.6959488, 101.325),
        ("bar(g)", "psi(g)", 1.0, 14.503774),
        ("ppm", "mg/m3", 28.0, 28.0 * 17.03 / 24.04),
        ("t/h", "kg/s", 3.6, 1.0),
    ],
)
def test_known_conversions(src: str, dst: str, value: float, expected: float) -> None:
    substance = "ammonia" if "ppm" in (src, dst) else None
    assert conversion(src, dst, substance).apply(value) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "pair",
    [("degC", "degF"), ("kPa", "psi"), ("ppm", "mg/m3"), ("bar(g)", "MPa(g)"), ("ppb", "%vol")],
)
def test_round_trip(pair: tuple[str, str]) -> None:
    there = conversion(pair[0], pair[1], "chlorine")
    back = conversion(pair[1], pair[0], "chlorine")
    for v in (-12.5, 0.0, 3.3, 1234.0):
        assert back.apply(there.apply(v)) == pytest.approx(v, abs=1e-9)


@pytest.mark.parametrize(
    ("src", "dst", "substance", "reason"),
    [
        ("bar", "bar(g)", None, INCOMPATIBLE_UNIT),
        ("kPa(g)", "psi", None, INCOMPATIBLE_UNIT),
        ("ppm", "%LEL", "propane", INCOMPATIBLE_UNIT),
        ("mg/m3", "ppm", None, INCOMPATIBLE_UNIT),  # needs the molar mass
        ("m3/h", "kg/s", None, INCOMPATIBLE_UNIT),
        ("degC", "kPa", None, INCOMPATIBLE_UNIT),
        ("parsecs", "m", None, UNKNOWN_UNIT),
    ],
)
def test_impossible_conversions_say_why(
    src: str, dst: str, substance: str | None, reason: str
) -> None:
    with pytest.raises(UnitError) as info:
        conversion(src, dst, substance)
    assert info.value.reason == reason
    assert src in info.value.message or dst in info.value.message


def test_aliases() -> None:
    assert canonical("°C") == "degC"
    assert canonical("psig") == "psi(g)"
    assert canonical("nope") is None
