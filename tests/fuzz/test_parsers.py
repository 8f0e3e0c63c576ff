"""Hypothesis fuzzing of every parser: no exception escapes, every rejection has a reason.

Bad input is data: the ingest parsers return rejections with a known reason code, the
shared decoders raise their one documented error type with a message. Anything else
escaping (KeyError, AttributeError, RecursionError, ...) is a bug this finds.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.incidents import load_rules
from chemwatch.tail import format_record
from common import sparkplug_b_pb2 as pb
from common.conditions import ConditionEvent, ConditionFormatError
from common.deadletter import DeadLetter, DeadLetterFormatError
from common.errors import ConfigError
from common.readings import BatchFormatError, ReadingBatch, decode_batch, encode_batch
from common.registry import load_registry, parse_registry
from common.settings import BaseProcessSettings, load_settings
from ingest.batching import Batcher
from ingest.parse_json import JsonContext, parse_json
from ingest.rejection import REASONS, Rejection
from ingest.sensors import SensorTable
from ingest.settings import IngestOptions, IngestSettings
from ingest.sparkplug import SparkplugHost
from simulators.scenario import parse_scenario
from tests.alerting.helpers import pair

ROOT = Path(__file__).resolve().parents[2]
PLANT = ROOT / "examples" / "plant.yaml"
REGISTRY = load_registry(PLANT)
SENSORS = SensorTable(REGISTRY)
PLANT_DOC = yaml.safe_load(PLANT.read_text())
PREFIX = "chemwatch/v1"
OPTIONS = IngestOptions()
FAST = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

SITES = [s.id for s in REGISTRY.plant.sites]
UNITS = [u.id for s in REGISTRY.plant.sites for u in s.units]
SENSOR_IDS = [x.id for s in REGISTRY.plant.sites for u in s.units for x in u.sensors]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
now_ms = int(time.time() * 1000)
timestamps = (
    st.integers(min_value=now_ms - 10**8, max_value=now_ms + 10**7)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.datetimes().map(lambda d: d.isoformat())
    | json_values
)
readings = st.fixed_dictionaries(
    {},
    optional={
        "sensor": st.sampled_from(SENSOR_IDS) | st.text(max_size=80),
        "ts": timestamps,
        "value": st.floats() | st.integers(min_value=-(2**70), max_value=2**70) | json_values,
        "quality": st.sampled_from(["good", "uncertain", "bad"]) | json_values,
        "unit": st.sampled_from(["bar(g)", "kPa", "degC", "%LEL", "ppm", "psi"]) | json_values,
    },
)
segment = st.sampled_from(SITES + UNITS + SENSOR_IDS) | st.text(max_size=12)
topics = st.lists(segment, min_size=0, max_size=5).map(lambda p: "/".join([PREFIX, *p])) | st.text(
    max_size=60
)


def _payload_bytes(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


json_payloads = (
    readings.map(_payload_bytes)
    | st.lists(readings, max_size=8).map(lambda r: _payload_bytes({"readings": r}))
    | json_values.map(_payload_bytes)
    | st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
)


E = TypeVar("E", bound=Exception)


def _raised(error: type[E], call: Callable[..., Any], *args: Any, **kwargs: Any) -> E | None:
    """The documented error ``call`` raised, or None; any other exception propagates."""
    try:
        call(*args, **kwargs)
    except error as exc:
        return exc
    return None


def _check(rejections: list[Rejection]) -> None:
    for r in rejections:
        assert r.reason in REASONS, r
        assert r.message, r


@FAST
@given(topic=topics, payload=json_payloads)
def test_ingest_json_parser(topic: str, payload: bytes) -> None:
    ctx = JsonContext(SENSORS, PREFIX, OPTIONS)
    _check(parse_json(topic, payload, time.time_ns(), ctx, Batcher()))


metric = st.builds(
    lambda name, alias, datatype, kind, value, ts: (name, alias, datatype, kind, value, ts),
    st.none()
    | st.sampled_from([*SENSOR_IDS, "Node Control/Rebirth", "bdSeq"])
    | st.text(max_size=20),
    st.none() | st.integers(min_value=0, max_value=2**64 - 1),
    st.none() | st.integers(min_value=0, max_value=40),
    st.sampled_from(
        [
            "int_value",
            "long_value",
            "float_value",
            "double_value",
            "boolean_value",
            "string_value",
            None,
        ]
    ),
    st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.booleans()
    | st.text(max_size=10),
    st.none() | st.integers(min_value=0, max_value=2**64 - 1),
)


def _sparkplug(seq: int | None, metrics: list[tuple[Any, ...]]) -> bytes:
    p = pb.Payload()
    if seq is not None:
        p.seq = seq
    for name, alias, datatype, kind, value, ts in metrics:
        m = p.metrics.add()
        if name is not None:
            m.name = name
        if alias is not None:
            m.alias = alias
        if datatype is not None:
            m.datatype = datatype
        if ts is not None:
            m.timestamp = ts
        try:
            if kind == "int_value":
                m.int_value = int(value) % 2**32
            elif kind == "long_value":
                m.long_value = int(value) % 2**64
            elif kind in ("float_value", "double_value"):
                setattr(m, kind, float(value))
            elif kind == "boolean_value":
                m.boolean_value = bool(value)
            elif kind == "string_value":
                m.string_value = str(value)
        except (ValueError, OverflowError):
            m.is_null = True
    return p.SerializeToString()


sparkplug_topics = st.builds(
    lambda group, kind, edge, device: "/".join(
        x for x in ("spBv1.0", group, kind, edge, device) if x is not None
    ),
    st.sampled_from(["haibin", "jinghe"]) | st.text(max_size=8),
    st.sampled_from(["NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH", "STATE", "NCMD"])
    | st.text(max_size=6),
    st.sampled_from(["lpg-farm-rtu"]) | st.text(max_size=8),
    st.none() | st.sampled_from(["TK101", "TK102"]) | st.text(max_size=8),
) | st.text(max_size=40)
sparkplug_payloads = st.builds(
    _sparkplug,
    st.none() | st.integers(min_value=0, max_value=2**64 - 1),
    st.lists(metric, max_size=6),
) | st.binary(max_size=120)


@FAST
@given(messages=st.lists(st.tuples(sparkplug_topics, sparkplug_payloads), min_size=1, max_size=6))
def test_sparkplug_decoder(messages: list[tuple[str, bytes]]) -> None:
    # One host across the messages: alias tables and seq state carry over, as live.
    host = SparkplugHost(REGISTRY, SENSORS, lambda _t, _p: None, OPTIONS)
    for topic, payload in messages:
        _check(host.handle(topic, payload, time.time_ns(), Batcher()))


def _valid_batch() -> bytes:
    import numpy as np

    return encode_batch(
        ReadingBatch.from_columns(
            "TK101",
            ["TK101-PT-01", "TK101-TT-01", "TK101-PT-01"],
            np.array([1, 2, 3], dtype=np.int64),
            np.array([4, 5, 6], dtype=np.int64),
            np.array([7.0, 8.0, 9.0]),
            np.array([0, 1, 2], dtype=np.uint8),
        )
    )


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for pos, byte in edits:
        out[pos % len(out)] = byte
    return bytes(out[:cut] if cut is not None else out)


@FAST
@given(
    data=st.binary(max_size=300)
    | st.builds(
        lambda edits, cut: _mutate(_valid_batch(), edits, cut),
        st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4),
        st.none() | st.integers(min_value=0, max_value=2000),
    )
)
def test_decode_batch(data: bytes) -> None:
    error = _raised(BatchFormatError, decode_batch, data)
    assert error is None or str(error)


def _event_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(pair("TK101-PT-01", "HH", 0)[0].to_json())
    return doc


@FAST
@given(
    raw=st.binary(max_size=200)
    | json_values.map(_payload_bytes)
    | st.builds(
        lambda key, value: _payload_bytes({**_event_doc(), key: value}),
        st.sampled_from(sorted(_event_doc())) | st.text(max_size=8),
        json_values,
    )
    | st.builds(
        lambda key: _payload_bytes({k: v for k, v in _event_doc().items() if k != key}),
        st.sampled_from(sorted(_event_doc())),
    )
    | st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n)
)
def test_condition_event_from_json(raw: bytes) -> None:
    error = _raised(ConditionFormatError, ConditionEvent.from_json, raw)
    assert error is None or str(error)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PLANT_PATHS = _paths(PLANT_DOC)[1:]


def _replace(path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    doc = copy.deepcopy(PLANT_DOC)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


@FAST
@given(
    doc=json_values
    | st.builds(
        lambda edits: edits,
        st.lists(
            st.tuples(st.sampled_from(PLANT_PATHS), json_values, st.booleans()),
            min_size=1,
            max_size=3,
        ),
    ).map(lambda edits: _apply_all(edits))
)
def test_registry_loader(doc: Any) -> None:
    error = _raised(ConfigError, parse_registry, doc, "fuzz.yaml")
    assert error is None or (error.source == "fuzz.yaml" and error.problem)


def _apply_all(edits: list[tuple[tuple[Any, ...], Any, bool]], base: Any = PLANT_DOC) -> Any:
    doc = base
    for path, value, delete in edits:
        global_doc = doc
        try:
            node = global_doc = copy.deepcopy(global_doc)
            for key in path[:-1]:
                node = node[key]
            if delete:
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this path
        doc = global_doc
    return doc


env_keys = st.sampled_from(
    [
        "CHEMWATCH_MQTT__PORT",
        "CHEMWATCH_MQTT__TLS",
        "CHEMWATCH_MQTT__QOS",
        "CHEMWATCH_KAFKA__PARTITIONS",
        "CHEMWATCH_KAFKA__SECURITY_PROTOCOL",
        "CHEMWATCH_DATABASE__DB_SCHEMA",
        "CHEMWATCH_LOG_LEVEL",
        "CHEMWATCH_INGEST__MAX_PAYLOAD_BYTES",
        "CHEMWATCH_INGEST",
        "CHEMWATCH_MQTT",
        "CHEMWATCH_MQTT__PORT__X",
        "CHEMWATCH_",
        "CHEMWATCH___",
    ]
) | st.text(max_size=20).map(lambda s: "CHEMWATCH_" + s)
env_values = st.text(max_size=30) | json_values.map(json.dumps)


@FAST
@given(
    environ=st.dictionaries(env_keys, env_values, max_size=4),
    file_doc=st.none()
    | json_values
    | st.dictionaries(
        st.sampled_from(["mqtt", "kafka", "ingest", "plant", "log_level", "bogus"]),
        json_values,
        max_size=3,
    ),
)
def test_settings_loader(
    environ: dict[str, str], file_doc: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = None
    if file_doc is not None:
        config = tmp_path_factory.mktemp("cfg") / "c.yaml"
        config.write_text(yaml.safe_dump(file_doc))
    for cls in (BaseProcessSettings, IngestSettings):
        error = _raised(ConfigError, load_settings, cls, config, environ=environ)
        assert error is None or error.problem


def edited(base: Any) -> st.SearchStrategy[Any]:
    """``base`` with one to three of its values replaced by any JSON value or deleted."""
    paths = _paths(base)[1:]
    return st.lists(
        st.tuples(st.sampled_from(paths), json_values, st.booleans()), min_size=1, max_size=3
    ).map(lambda edits: _apply_all(edits, base))


RULES_DOC = yaml.safe_load((ROOT / "examples" / "rules.yaml").read_text())
SCENARIO_DOCS = [
    yaml.safe_load(p.read_text()) for p in sorted((ROOT / "examples" / "scenarios").glob("*.yaml"))
]


@FAST
@given(doc=json_values | edited(RULES_DOC))
def test_incident_rules_loader(doc: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump(doc))
    error = _raised(ConfigError, load_rules, path)
    assert error is None or (error.source == str(path) and error.problem)


@FAST
@given(doc=json_values | st.one_of([edited(d) for d in SCENARIO_DOCS]))
def test_scenario_parser(doc: Any) -> None:
    error = _raised(ConfigError, parse_scenario, doc, REGISTRY, "fuzz.yaml")
    assert error is None or (error.source == "fuzz.yaml" and error.problem)


def _letter_doc() -> dict[str, Any]:
    letter = DeadLetter("chemwatch/v1/haibin/TK101", "not_json", "bad", b"{", datetime.now(UTC), 2)
    return dict(json.loads(letter.to_json()))


letters = (
    st.binary(max_size=200)
    | json_values.map(_payload_bytes)
    | st.builds(
        lambda key, value: _payload_bytes({**_letter_doc(), key: value}),
        st.sampled_from(sorted(_letter_doc())),
        json_values,
    )
    | st.sampled_from(sorted(_letter_doc())).map(
        lambda key: _payload_bytes({k: v for k, v in _letter_doc().items() if k != key})
    )
    | st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n)
)


@FAST
@given(raw=letters)
def test_dead_letter_from_json(raw: bytes) -> None:
    error = _raised(DeadLetterFormatError, DeadLetter.from_json, raw)
    assert error is None or str(error)


@FAST
@given(
    kind=st.sampled_from(["readings", "dlq", "conditions"]),
    raw=letters | st.binary(max_size=300),
    as_json=st.booleans(),
)
def test_tail_shows_any_record(kind: str, raw: bytes, as_json: bool) -> None:
    """``chemwatch tail`` prints a line for whatever a topic holds, and never stops."""
    record = SimpleNamespace(value=raw, offset=7, partition=0)
    lines = list(format_record(kind, record, as_json=as_json))  # type: ignore[arg-type]
    assert lines
    assert all(isinstance(line, str) for line in lines)
