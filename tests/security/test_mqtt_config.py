"""The broker's ACL and TLS configuration as written by the stack (no broker needed)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from chemwatch.stack.config import MqttGatewayUser
from chemwatch.stack.mosquitto import render_acl, render_mosquitto_conf


def test_acl_gives_the_bridge_everything_and_a_gateway_only_its_sites() -> None:
    gateways = [
        MqttGatewayUser(username="gw-a", password=SecretStr("p"), sites=["site-a"]),
        MqttGatewayUser(
            username="gw-b", password=SecretStr("q"), sites=["site-b"], topics=["spBv1.0/b/#"]
        ),
    ]
    blocks = [b.splitlines() for b in render_acl("bridge", gateways, "chemwatch/v1").split("\n\n")]
    blocks = [[line for line in b if not line.startswith("#")] for b in blocks if b]
    assert blocks[0] == ["user bridge", "topic readwrite #"]
    assert blocks[1] == ["user gw-a", "topic write chemwatch/v1/site-a/#"]
    assert blocks[2] == [
        "user gw-b",
        "topic write chemwatch/v1/site-b/#",
        "topic write spBv1.0/b/#",
    ]


def test_conf_with_acl_and_tls(tmp_path: Path) -> None:
    conf = render_mosquitto_conf(
        "127.0.0.1",
        8883,
        tmp_path,
        tmp_path / "passwd",
        tmp_path / "acl",
        (tmp_path / "s.crt", tmp_path / "s.key"),
    ).splitlines()
    listener = conf.index("listener 8883 127.0.0.1")
    # TLS options belong to the listener, so they follow it.
    assert conf[listener + 1 : listener + 3] == [
        f"certfile {tmp_path / 's.crt'}",
        f"keyfile {tmp_path / 's.key'}",
    ]
    assert f"acl_file {tmp_path / 'acl'}" in conf
    assert "allow_anonymous false" in conf


def test_gateway_username_cannot_smuggle_acl_syntax() -> None:
    import pytest
    from pydantic import ValidationError

    for bad in ["gw a", "gw\nuser x", "a:b", "#", ""]:
        with pytest.raises(ValidationError):
            MqttGatewayUser(username=bad, password=SecretStr("p"))
    for site in ["#", "a/b", "a\ntopic write #", "+", "a b"]:
        with pytest.raises(ValidationError):
            MqttGatewayUser(username="gw", password=SecretStr("p"), sites=[site])
    with pytest.raises(ValidationError):
        MqttGatewayUser(username="gw", password=SecretStr("p"), topics=["a/#\ntopic write #"])
