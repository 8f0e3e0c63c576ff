"""Engineering-unit conversion for payloads that say which unit they carry.

A payload may carry ``"unit": "mg/m3"`` while the registry declares the sensor in
``ppm``; the bridge converts to the registry's unit so everything downstream sees one
unit per sensor. Every conversion is affine (``out = value * scale + offset``), so it
is computed once per (payload unit, sensor) and cached.

Rules (see docs/ingest.md):

* temperature: degC, K, degF.
* pressure, absolute family: kPa, MPa, bar, psi (plain units are read as absolute);
  gauge family: bar(g), kPa(g), MPa(g), psi(g). Gauge <-> absolute is *rejected*
  (``incompatible_unit``): it needs the local atmospheric pressure, which a payload
  does not carry, and assuming 101.325 kPa would shift a 1 bar(g) tank reading by up
  to a few per cent in the mountains without anyone noticing.
* gas, volume fraction: ppb, ppm, %vol; mass concentration mg/m3 converts to and from
  the fractions through the substance's molar mass at 20 degC, 101.3 kPa
  (24.04 L/mol, GBZ 2.1 basis). %LEL is accepted only as %LEL: a detector's %LEL
  depends on its calibration gas and the LEL table used, so we never derive it.
* flow: t/h <-> kg/s; m3/h only as itself (density unknown). level: % and m only as
  themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.substances import MOLAR_VOLUME_L, SUBSTANCES

UNKNOWN_UNIT = "unknown_unit"
INCOMPATIBLE_UNIT = "incompatible_unit"


@dataclass(frozen=True, slots=True)
class Conversion:
    """``out = value * scale + offset``."""

    scale: float
    offset: float = 0.0

    def apply(self, value: float) -> float:
        """Convert one value."""
        return value * self.scale + self.offset


IDENTITY = Conversion(1.0)


class UnitError(Exception):
    """A payload unit that cannot be converted; ``reason`` is the dead-letter code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# unit -> (dimension, scale to the dimension's base, offset to base)
_UNITS: dict[str, tuple[str, float, float]] = {
    "K": ("temperature", 1.0, 0.0),
    "degC": ("temperature", 1.0, 273.15),
    "degF": ("temperature", 5 / 9, 273.15 - 32 * 5 / 9),
    "kPa": ("pressure_abs", 1e3, 0.0),
    "MPa": ("pressure_abs", 1e6, 0.0),
    "bar": ("pressure_abs", 1e5, 0.0),
    "psi": ("pressure_abs", 6894.757293168, 0.0),
    "kPa(g)": ("pressure_gauge", 1e3, 0.0),
    "MPa(g)": ("pressure_gauge", 1e6, 0.0),
    "bar(g)": ("pressure_gauge", 1e5, 0.0),
    "psi(g)": ("pressure_gauge", 6894.757293168, 0.0),
    "ppb": ("gas_fraction", 1e-3, 0.0),
    "ppm": ("gas_fraction", 1.0, 0.0),
    "%vol": ("gas_fraction", 1e4, 0.0),
    "mg/m3": ("gas_mass", 1.0, 0.0),
    "%LEL": ("gas_lel", 1.0, 0.0),
    "%": ("level_pct", 1.0, 0.0),
    "m": ("level_m", 1.0, 0.0),
    "m3/h": ("flow_volume", 1.0, 0.0),
    "kg/s": ("flow_mass", 1.0, 0.0),
    "t/h": ("flow_mass", 1000 / 3600, 0.0),
}

# Spellings seen in the field for the same units.
_ALIASES = {
    "°C": "degC",
    "°F": "degF",
    "degK": "K",
    "barg": "bar(g)",
    "psig": "psi(g)",
    "psia": "psi",
    "bara": "bar",
    "kPag": "kPa(g)",
    "kPaa": "kPa",
    "mg/m³": "mg/m3",
    "vol%": "%vol",
}


def canonical(unit: str) -> str | None:
    """The canonical spelling of ``unit``, or None if we do not know it."""
    unit = _ALIASES.get(unit, unit)
    return unit if unit in _UNITS else None


def conversion(from_unit: str, to_unit: str, substance: str | None = None) -> Conversion:
    """How to turn a value in ``from_unit`` into ``to_unit``; raise UnitError if impossible."""
    src = canonical(from_unit)
    if src is None:
        raise UnitError(UNKNOWN_UNIT, f"unit {from_unit!r} is not a unit we know")
    dst = canonical(to_unit)
    if dst is None:
        raise UnitError(UNKNOWN_UNIT, f"sensor unit {to_unit!r} is not a unit we know")
    if src == dst:
        return IDENTITY
    s_dim, s_scale, s_off = _UNITS[src]
    d_dim, d_scale, d_off = _UNITS[dst]
    if s_dim == d_dim:
        # base = v * s_scale + s_off; out = (base - d_off) / d_scale
        return Conversion(s_scale / d_scale, (s_off - d_off) / d_scale)
    if {s_dim, d_dim} == {"gas_fraction", "gas_mass"}:
        return _gas_mass_fraction(src, dst, s_dim, s_scale, d_scale, substance)
    why = ""
    if {s_dim, d_dim} == {"pressure_abs", "pressure_gauge"}:
        why = " (gauge and absolute pressure differ by the local atmospheric pressure)"
    elif "gas_lel" in (s_dim, d_dim):
        why = " (%LEL depends on the detector's calibration; it is never derived)"
    raise UnitError(INCOMPATIBLE_UNIT, f"cannot convert {src} to {dst}{why}")


def _gas_mass_fraction(
    src: str, dst: str, s_dim: str, s_scale: float, d_scale: float, substance: str | None
) -> Conversion:
    info = SUBSTANCES.get(substance or "")
    if info is None:
        raise UnitError(
            INCOMPATIBLE_UNIT, f"cannot convert {src} to {dst} without a known substance"
        )
    mg_m3_per_ppm = info.molar_mass_g_mol / MOLAR_VOLUME_L
    if s_dim == "gas_fraction":  # fraction -> ppm -> mg/m3
        return Conversion(s_scale * mg_m3_per_ppm / d_scale)
    return Conversion(s_scale / mg_m3_per_ppm / d_scale)  # mg/m3 -> ppm -> fraction
