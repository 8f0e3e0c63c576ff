"""A private Mosquitto with passwords, per-site ACLs and TLS, started by the stack manager.

The shared broker is never touched: this one lives in its own home on a free port, with
a CA and a server certificate made for the test by the openssl CLI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from chemwatch.ports import free_port
from chemwatch.stack.config import StackSettings
from chemwatch.stack.mosquitto import Mosquitto
from common.settings import BaseProcessSettings, MqttSettings
from tests.fixtures.services import ROOT

PREFIX = "sec/v1"
SITE_A = "haibin-terminal"
SITE_B = "jinghe-finechem"
BRIDGE_USER = "bridge-7f3c"
BRIDGE_PASSWORD = "brg-pw-Zq81xLvd0K"
GATEWAY_USER = "gw-haibin"
GATEWAY_PASSWORD = "gw-pw-Hm4tR9sWq2"


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1/localhost it signed."""
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=chemwatch-test-ca", "-keyout", str(ca_key), "-out", str(ca_crt))  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(csr))  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    return ca_crt, crt, key


@dataclass
class PrivateBroker:
    home: Path
    config: Path
    port: int
    ca_file: Path

    def mqtt(self, **update: Any) -> MqttSettings:
        """Client settings for the bridge account over TLS (override any field)."""
        fields: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "username": BRIDGE_USER,
            "password": BRIDGE_PASSWORD,
            "tls": True,
            "ca_file": self.ca_file,
            "topic_prefix": PREFIX,
        }
        return MqttSettings.model_validate(fields | update)

    def env(self) -> dict[str, str]:
        """CHEMWATCH_MQTT__* for a service that should use this broker as the bridge."""
        return {
            "CHEMWATCH_MQTT__PORT": str(self.port),
            "CHEMWATCH_MQTT__USERNAME": BRIDGE_USER,
            "CHEMWATCH_MQTT__PASSWORD": BRIDGE_PASSWORD,
            "CHEMWATCH_MQTT__TLS": "true",
            "CHEMWATCH_MQTT__CA_FILE": str(self.ca_file),
            "CHEMWATCH_MQTT__TOPIC_PREFIX": PREFIX,
        }

    def cli(self, command: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHEMWATCH_")}
        argv = ["stack", command, "--home", str(self.home), "--config", str(self.config)]
        return subprocess.run(
            [sys.executable, "-m", "chemwatch", *argv, "--only", "mosquitto"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def down(self) -> None:
        self.cli("down")
        stack = StackSettings(home=self.home)
        mosquitto = Mosquitto(stack, BaseProcessSettings(mqtt=MqttSettings(port=self.port)))
        # A home under a 0700 tmp dir sends the broker's data to the fallback directory.
        shutil.rmtree(mosquitto.fallback_dir.parent, ignore_errors=True)


def start_private_broker(directory: Path) -> PrivateBroker:
    """Write the config, run `chemwatch stack up --only mosquitto`, return the broker."""
    ca_file, cert, key = make_ca(directory)
    port = free_port()
    config = directory / "stack.yaml"
    doc = {
        "mqtt": {
            "port": port,
            "username": BRIDGE_USER,
            "password": BRIDGE_PASSWORD,
            "tls": True,
            "ca_file": str(ca_file),
            "topic_prefix": PREFIX,
        },
        "stack": {
            "mqtt_tls_certfile": str(cert),
            "mqtt_tls_keyfile": str(key),
            "mqtt_gateways": [
                {"username": GATEWAY_USER, "password": GATEWAY_PASSWORD, "sites": [SITE_A]}
            ],
        },
    }
    config.write_text(yaml.safe_dump(doc))
    broker = PrivateBroker(directory / "home", config, port, ca_file)
    started = broker.cli("up")
    if started.returncode != 0:
        broker.down()
        raise AssertionError(f"private broker did not start:\n{started.stdout}\n{started.stderr}")
    return broker


def client(mqtt: MqttSettings) -> paho.Client:
    """A plain MQTT 5 test client for ``mqtt`` (credentials and TLS as given)."""
    c = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"sec-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv5,
    )
    if mqtt.username:
        c.username_pw_set(
            mqtt.username, mqtt.password.get_secret_value() if mqtt.password else None
        )
    if mqtt.tls:
        c.tls_set(ca_certs=str(mqtt.ca_file) if mqtt.ca_file else None)
    return c


def connect_result(mqtt: MqttSettings, timeout: float = 10) -> str:
    """Connect once and report the CONNACK reason ('Success' or why not)."""
    c = client(mqtt)
    done = threading.Event()
    result: list[str] = []

    def on_connect(_c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result.append(str(reason))
        done.set()

    c.on_connect = on_connect
    c.connect(mqtt.host, mqtt.port)
    c.loop_start()
    try:
        if not done.wait(timeout):
            return "no CONNACK"
        return result[0]
    finally:
        c.disconnect()
        c.loop_stop()
