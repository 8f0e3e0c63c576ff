"""The committed Sparkplug B module is what protoc makes of the committed .proto."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from common import sparkplug_b_pb2 as pb

COMMON = Path(__file__).resolve().parents[2] / "common"


def test_generated_module_matches_the_proto(tmp_path: Path) -> None:
    out = tmp_path / "sparkplug.desc"
    assert (
        protoc.main(["protoc", f"-I{COMMON}", f"--descriptor_set_out={out}", "sparkplug_b.proto"])
        == 0
    )
    from_proto = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _drop_json_names(from_proto.message_type)  # the Python generator leaves them out
    committed = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert committed == from_proto, (
        "common/sparkplug_b_pb2.py is stale: regenerate it with the command in "
        "common/sparkplug_b.proto"
    )


def test_spec_field_numbers() -> None:
    metric = pb.Payload.Metric.DESCRIPTOR.fields_by_name
    assert metric["alias"].number == 2
    assert metric["double_value"].number == 13
    assert pb.Payload.DESCRIPTOR.fields_by_name["seq"].number == 3
    assert pb.DataType.Value("Boolean") == 11


def _drop_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for f in message.field:
            f.ClearField("json_name")
        _drop_json_names(message.nested_type)
