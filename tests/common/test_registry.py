"""Unit tests for the plant registry: the example plant and every kind of load error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from common.errors import ConfigError
from common.registry import Registry, load_registry
from common.substances import SUBSTANCES

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plant.yaml"
# libyaml's dumper when present: writing the broken documents stays cheap.
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def example_doc() -> Doc:
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(EXAMPLE)


@pytest.fixture
def doc(example_doc: Doc) -> Doc:
    """A private deep copy of the example document to break (JSON round trip: no aliasing)."""
    copy: Doc = json.loads(json.dumps(example_doc))
    return copy


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.dump(data, Dumper=DUMPER, sort_keys=False), encoding="utf-8")
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    return info.value


def assert_error(err: ConfigError, path: Path, key: str, problem: str) -> None:
    """The error names the file, the exact key path and the problem, in that order."""
    assert err.source == str(path)
    assert err.key == key
    assert problem in err.problem
    message = str(err)
    where = f"{path}: {key}: " if key else f"{path}: "
    assert message.startswith(where), message
    assert problem in message


def sensors(doc: Doc, site: int = 0, unit: int = 0) -> list[Doc]:
    out: list[Doc] = doc["sites"][site]["units"][unit]["sensors"]
    return out


def first_sensor(doc: Doc, kind: str, unit_text: str | None = None) -> tuple[str, Doc]:
    """The key path and the mapping of the first sensor of this kind (and unit)."""
    for si, site in enumerate(doc["sites"]):
        for ui, unit in enumerate(site["units"]):
            for ni, sensor in enumerate(unit["sensors"]):
                if sensor["kind"] == kind and unit_text in (None, sensor["unit"]):
                    return f"sites[{si}].units[{ui}].sensors[{ni}]", sensor
    raise AssertionError(f"example plant has no {kind} sensor")


# --------------------------------------------------------------------------- example


def test_example_plant_is_large_enough(registry: Registry) -> None:
    assert len(registry.plant.sites) >= 2
    assert len(registry.units) >= 6
    assert len(registry) >= 60
    kinds = {r.sensor.kind for r in registry}
    assert {"gas", "temperature", "pressure"} <= kinds


def test_example_ids_are_unique_and_sites_differ(registry: Registry) -> None:
    ids = [r.sensor.id for r in registry]
    assert len(ids) == len(set(ids))
    sites = registry.plant.sites
    assert len({s.enterprise for s in sites}) == len(sites)
    assert len({s.region for s in sites}) == len(sites)
    assert all(s.people_exposed > 0 for s in sites)


def test_example_combustible_gas_limits_follow_gb_t_50493(registry: Registry) -> None:
    lel = [r.sensor for r in registry if r.sensor.kind == "gas" and r.sensor.unit == "%LEL"]
    assert lel, "example plant has no %LEL detector"
    for sensor in lel:
        assert sensor.range == (0.0, 100.0), sensor.id
        assert sensor.limits.h == 25.0, sensor.id  # first level: 25 %LEL
        assert sensor.limits.hh == 50.0, sensor.id  # second level: 50 %LEL
        assert SUBSTANCES[sensor.substance or ""].lel_vol_pct is not None, sensor.id


def test_example_toxic_gas_limits_are_oel_based(registry: Registry) -> None:
    """First level = OEL, second = 2 x OEL (GB/T 50493), in mg/m3 or ppm at 20 degC."""
    toxic = [r.sensor for r in registry if r.sensor.unit in ("ppm", "mg/m3")]
    assert toxic
    for sensor in toxic:
        oel = SUBSTANCES[sensor.substance or ""].oel_mg_m3
        assert oel is not None, sensor.id
        if sensor.unit == "ppm":
            oel = oel * 24.04 / SUBSTANCES[sensor.substance or ""].molar_mass_g_mol
        assert sensor.limits.h == pytest.approx(oel, rel=0.02), sensor.id
        assert sensor.limits.hh == pytest.approx(2 * oel, rel=0.02), sensor.id


def test_example_gas_detectors_have_positions_and_fast_delays(registry: Registry) -> None:
    for ref in registry:
        sensor = ref.sensor
        if sensor.kind == "gas":
            assert sensor.position_m is not None, sensor.id
            assert sensor.limits.on_delay_s <= 5, sensor.id  # life safety: a few seconds
        if sensor.kind == "temperature":
            assert sensor.limits.on_delay_s <= 10, sensor.id
        assert sensor.interval_s >= 1, sensor.id
        assert sensor.interval_s <= 5, sensor.id


def test_example_vessel_pressure_alarms_sit_below_relief(registry: Registry) -> None:
    checked = 0
    for _, unit in registry.units.values():
        if unit.relief_set_pressure_barg is None:
            continue
        for sensor in unit.sensors:
            if sensor.kind == "pressure" and sensor.unit == "bar(g)":
                assert sensor.limits.hh is not None, sensor.id
                assert sensor.limits.hh < unit.relief_set_pressure_barg, sensor.id
                checked += 1
    assert checked >= 4


def test_example_inventories_use_known_substances(registry: Registry) -> None:
    inventories = [i for _, u in registry.units.values() for i in u.inventories]
    assert inventories
    assert {i.substance for i in inventories} <= set(SUBSTANCES)
    assert {"propane", "ammonia", "chlorine"} <= {i.substance for i in inventories}


# --------------------------------------------------------------------------- helpers


def test_sensor_lookup(registry: Registry) -> None:
    first = registry.sensors[0]
    assert registry.sensor(first.sensor.id) is first
    assert registry.sensor("NO-SUCH-SENSOR") is None
    assert next(iter(registry)) is first


def test_indices_give_minus_one_for_unknown_ids(registry: Registry) -> None:
    ids = registry.sensor_ids
    query = np.array([ids[3], "NO-SUCH-SENSOR", ids[0], "", ids[-1]], dtype=object)
    assert registry.indices(query).tolist() == [3, -1, 0, -1, len(registry) - 1]
    assert registry.indices(np.array([], dtype=object)).dtype == np.int64
    assert registry.indices(np.array([], dtype=object)).shape == (0,)


def test_dense_arrays_follow_sensor_order(registry: Registry) -> None:
    assert registry.sensor_ids.shape == (len(registry),)
    assert registry.unit_ids[0] == registry.sensors[0].unit.id
    lo, hi = registry.range_arrays()
    assert np.all(lo < hi)
    assert registry.deadband_array().shape == (len(registry),)


def test_limit_array_has_nan_where_no_limit(registry: Registry) -> None:
    hh = registry.limit_array("hh")
    ll = registry.limit_array("ll")
    assert hh.dtype == np.float64
    assert hh.shape == (len(registry),)
    for ref in registry:
        want = ref.sensor.limits.ll
        got = ll[ref.index]
        assert np.isnan(got) if want is None else got == want, ref.sensor.id
    # Gas and pressure sensors have no low-low limit; level sensors do.
    assert np.isnan(ll).any()
    assert not np.isnan(ll).all()
    assert not np.isnan(hh).any()


# --------------------------------------------------------------------------- errors


def test_error_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    assert_error(load_error(path), path, "", "cannot read plant registry")


def test_error_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text("name: x\nsites: [\n  - id: a\n", encoding="utf-8")
    assert_error(load_error(path), path, "", "not valid YAML")


@pytest.mark.parametrize("document", ["[1, 2, 3]\n", "just a string\n", ""])
def test_error_top_level_not_a_mapping(tmp_path: Path, document: str) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(document, encoding="utf-8")
    assert_error(load_error(path), path, "", "top level must be a mapping")


Mutation = Callable[[Doc], None]


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        pytest.param(lambda d: d.pop("name"), "name", id="plant-name"),
        pytest.param(lambda d: d["sites"][1].pop("enterprise"), "sites[1].enterprise", id="site"),
        pytest.param(
            lambda d: d["sites"][0]["units"][1]["sensors"][0].pop("unit"),
            "sites[0].units[1].sensors[0].unit",
            id="sensor-unit",
        ),
        pytest.param(
            lambda d: d["sites"][0]["units"][0]["inventories"][0].pop("quantity_t"),
            "sites[0].units[0].inventories[0].quantity_t",
            id="inventory",
        ),
    ],
)
def test_error_missing_required_key(tmp_path: Path, doc: Doc, mutate: Mutation, key: str) -> None:
    mutate(doc)
    path = write(tmp_path, doc)
    assert_error(load_error(path), path, key, "required key is missing")


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        pytest.param(
            lambda d: sensors(d)[2].__setitem__("intervall_s", 2),
            "sites[0].units[0].sensors[2].intervall_s",
            id="sensor",
        ),
        pytest.param(
            lambda d: sensors(d)[0]["limits"].__setitem__("hhh", 20),
            "sites[0].units[0].sensors[0].limits.hhh",
            id="limits",
        ),
        pytest.param(
            lambda d: d["sites"][1].__setitem__("peopel_exposed", 3),
            "sites[1].peopel_exposed",
            id="site",
        ),
    ],
)
def test_error_unknown_key(tmp_path: Path, doc: Doc, mutate: Mutation, key: str) -> None:
    mutate(doc)
    path = write(tmp_path, doc)
    assert_error(load_error(path), path, key, "unknown key (typo?)")


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        pytest.param(
            lambda d: sensors(d)[0].__setitem__("interval_s", "fast"),
            "sites[0].units[0].sensors[0].interval_s",
            "valid number",
            id="interval",
        ),
        pytest.param(
            lambda d: sensors(d)[0]["limits"].__setitem__("hh", "high"),
            "sites[0].units[0].sensors[0].limits.hh",
            "valid number",
            id="limit",
        ),
        pytest.param(
            lambda d: d["sites"][1].__setitem__("people_exposed", "many"),
            "sites[1].people_exposed",
            "valid integer",
            id="people",
        ),
        pytest.param(
            lambda d: d["sites"][0].__setitem__("units", {"id": "TK101"}),
            "sites[0].units",
            "valid tuple",
            id="units-not-a-list",
        ),
    ],
)
def test_error_wrong_type(
    tmp_path: Path, doc: Doc, mutate: Mutation, key: str, problem: str
) -> None:
    mutate(doc)
    path = write(tmp_path, doc)
    assert_error(load_error(path), path, key, problem)


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        pytest.param(
            lambda d: sensors(d)[1].__setitem__("id", "TK101 PT 02"),
            "sites[0].units[0].sensors[1].id",
            id="sensor-space",
        ),
        pytest.param(
            lambda d: d["sites"][0]["units"][2].__setitem__("id", "-TK201"),
            "sites[0].units[2].id",
            id="unit-leading-dash",
        ),
        pytest.param(
            lambda d: d["sites"][1].__setitem__("id", "jinghe/finechem"),
            "sites[1].id",
            id="site-slash",
        ),
    ],
)
def test_error_bad_id_pattern(tmp_path: Path, doc: Doc, mutate: Mutation, key: str) -> None:
    mutate(doc)
    path = write(tmp_path, doc)
    assert_error(load_error(path), path, key, "should match pattern")


def test_error_duplicate_sensor_id_names_both_places(tmp_path: Path, doc: Doc) -> None:
    original = sensors(doc, 0, 0)[0]["id"]
    sensors(doc, 1, 1)[2]["id"] = original
    path = write(tmp_path, doc)
    err = load_error(path)
    assert_error(
        err,
        path,
        "sites[1].units[1].sensors[2].id",
        f"duplicate sensor id {original!r} (first at sites[0].units[0].sensors[0].id)",
    )


def test_error_duplicate_unit_id(tmp_path: Path, doc: Doc) -> None:
    original = doc["sites"][0]["units"][0]["id"]
    doc["sites"][1]["units"][3]["id"] = original
    path = write(tmp_path, doc)
    assert_error(
        load_error(path),
        path,
        "sites[1].units[3].id",
        f"duplicate unit id {original!r} (first at sites[0].units[0].id)",
    )


# Checks made by a model-level validator are reported at the model's key path
# (``...sensors[0]`` or ``...limits``), not at the offending field.


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        pytest.param({"h": 14, "hh": 14}, "hh (14.0) must be above h (14.0)", id="hh-equal-h"),
        pytest.param({"h": 14, "hh": 12}, "hh (12.0) must be above h (14.0)", id="hh-below-h"),
        pytest.param({"l": 15, "h": 14}, "h (14.0) must be above l (15.0)", id="h-below-l"),
        pytest.param({"ll": 3, "l": 2, "h": 14}, "l (2.0) must be above ll (3.0)", id="l-below-ll"),
    ],
)
def test_error_limits_out_of_order(
    tmp_path: Path, doc: Doc, limits: dict[str, float], problem: str
) -> None:
    sensors(doc)[0]["limits"] = {**limits, "deadband": 0.5}
    path = write(tmp_path, doc)
    assert_error(load_error(path), path, "sites[0].units[0].sensors[0].limits", problem)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("hh", 150, "limit hh (150.0) lies outside the range [0.0, 100.0]"),
        ("h", -5, "limit h (-5.0) lies outside the range [0.0, 100.0]"),
    ],
)
def test_error_limit_outside_range(
    tmp_path: Path, doc: Doc, name: str, value: float, problem: str
) -> None:
    key, sensor = first_sensor(doc, "gas", "%LEL")
    sensor["limits"] = {"h": 25, "hh": 50, name: value}
    if name == "h":
        sensor["limits"].pop("hh")
    path = write(tmp_path, doc)
    assert_error(load_error(path), path, key, problem)


@pytest.mark.parametrize("rng", [[25, 0], [10, 10]])
def test_error_range_low_not_below_high(tmp_path: Path, doc: Doc, rng: list[float]) -> None:
    key, sensor = first_sensor(doc, "pressure")
    sensor["range"] = rng
    path = write(tmp_path, doc)
    problem = f"range low ({float(rng[0])}) must be below range high ({float(rng[1])})"
    assert_error(load_error(path), path, key, problem)


@pytest.mark.parametrize(
    ("kind", "bad_unit"),
    [("temperature", "bar(g)"), ("pressure", "degC"), ("gas", "kPa")],
)
def test_error_wrong_engineering_unit(tmp_path: Path, doc: Doc, kind: str, bad_unit: str) -> None:
    key, sensor = first_sensor(doc, kind)
    sensor["unit"] = bad_unit
    path = write(tmp_path, doc)
    assert_error(load_error(path), path, key, f"unit {bad_unit!r} is not a {kind} unit")


def test_error_gas_sensor_without_substance(tmp_path: Path, doc: Doc) -> None:
    key, sensor = first_sensor(doc, "gas")
    del sensor["substance"]
    path = write(tmp_path, doc)
    assert_error(load_error(path), path, key, "a gas sensor must name the substance")


def test_error_unknown_substance_on_sensor(tmp_path: Path, doc: Doc) -> None:
    key, sensor = first_sensor(doc, "gas")
    sensor["substance"] = "propanol-x"
    path = write(tmp_path, doc)
    assert_error(load_error(path), path, key, "unknown substance 'propanol-x'")


def test_error_unknown_substance_in_inventory(tmp_path: Path, doc: Doc) -> None:
    doc["sites"][1]["units"][0]["inventories"][0]["substance"] = "chlorine gas"
    path = write(tmp_path, doc)
    assert_error(load_error(path), path, "sites[1].units[0].inventories[0]", "unknown substance")


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        pytest.param(
            lambda d: d["sites"][1].__setitem__("units", []), "sites[1].units", id="units"
        ),
        pytest.param(lambda d: d.__setitem__("sites", []), "sites", id="sites"),
        pytest.param(
            lambda d: d["sites"][0]["units"][0].__setitem__("sensors", []),
            "sites[0].units[0].sensors",
            id="sensors",
        ),
    ],
)
def test_error_empty_list(tmp_path: Path, doc: Doc, mutate: Mutation, key: str) -> None:
    mutate(doc)
    path = write(tmp_path, doc)
    assert_error(load_error(path), path, key, "at least 1 item")
