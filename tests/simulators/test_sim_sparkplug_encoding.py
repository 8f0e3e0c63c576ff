"""The simulator's Sparkplug B encoder: payloads decode with the shared schema, and the
registry's mapping becomes edge nodes with unique aliases (no broker needed)."""

from __future__ import annotations

from common import sparkplug_b_pb2 as pb
from common.registry import load_registry
from simulators.settings import SimulatorSettings
from simulators.sparkplug import (
    REBIRTH,
    Metric,
    birth_payload,
    data_payload,
    death_payload,
    edge_nodes,
    is_rebirth_command,
)
from tests.fixtures.services import ROOT


def test_births_carry_names_aliases_datatypes_and_bdseq() -> None:
    m = Metric(3, None, "TK102/Pressure", 7)
    p = pb.Payload.FromString(birth_payload(0, 1000, [(m, 6.5, 990)], bdseq=4))
    assert p.seq == 0
    by_name = {x.name: x for x in p.metrics}
    assert by_name["bdSeq"].long_value == 4
    assert by_name[REBIRTH].HasField("boolean_value")
    assert not by_name[REBIRTH].boolean_value
    tk = by_name["TK102/Pressure"]
    assert (tk.alias, tk.datatype, tk.double_value, tk.timestamp) == (7, 10, 6.5, 990)


def test_data_by_alias_only_and_death_without_seq() -> None:
    m = Metric(3, "TK101", "TK101-PT-01", 2)
    p = pb.Payload.FromString(data_payload(255, 1000, [(m, 7.25, 999)]))
    assert p.seq == 255
    (x,) = p.metrics
    assert not x.name
    assert (x.alias, x.double_value, x.timestamp) == (2, 7.25, 999)
    d = pb.Payload.FromString(death_payload(9, 5))
    assert not d.HasField("seq")
    assert d.metrics[0].name == "bdSeq"
    assert d.metrics[0].long_value == 9


def test_rebirth_command_recognised() -> None:
    cmd = pb.Payload(timestamp=1)
    c = cmd.metrics.add()
    c.name, c.datatype, c.boolean_value = REBIRTH, 11, True
    assert is_rebirth_command(cmd.SerializeToString())
    c.boolean_value = False
    assert not is_rebirth_command(cmd.SerializeToString())
    assert not is_rebirth_command(b"\xff\xff garbage")


def test_example_plant_maps_one_edge_node_with_a_device_and_node_metrics() -> None:
    registry = load_registry(ROOT / "examples" / "plant.yaml")
    nodes = edge_nodes(SimulatorSettings(), registry)
    assert set(nodes) == {"TK101", "TK102"}
    node = nodes["TK101"]
    assert node is nodes["TK102"]
    assert (node.group, node.edge) == ("haibin", "lpg-farm-rtu")
    metrics = list(node.metrics.values())
    assert len({m.alias for m in metrics}) == len(metrics) == len(node.metrics)
    devices = {registry.sensors[m.index].unit.id: m.device for m in metrics}
    assert devices == {"TK101": "TK101", "TK102": None}
    names = {m.name for m in metrics}
    assert "TK102/Pressure" in names
    assert "TK101-PT-01" in names
