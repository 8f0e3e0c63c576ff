"""Settings of the local service stack and how they are loaded.

Connection settings (ports, credentials) are *not* duplicated here: the stack reads the
same :class:`common.settings.BaseProcessSettings` the services read, so both agree on
where Mosquitto, PostgreSQL and Kafka listen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator

from common.errors import ChemWatchError
from common.settings import BaseProcessSettings, Section, load_settings

HOME_ENV = "CHEMWATCH_STACK_HOME"
DEFAULT_HOME = Path(".chemwatch")
SERVICE_NAMES: tuple[str, ...] = ("mosquitto", "postgres", "kafka")


class StackError(ChemWatchError):
    """The stack could not be brought up, inspected or taken down; the message says why."""


def default_home() -> Path:
    """``$CHEMWATCH_STACK_HOME`` if set, else ``.chemwatch`` under the current directory."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


class MqttGatewayUser(Section):
    """A broker account for one sensor gateway, confined to its own site(s) by the ACL."""

    username: str = Field(min_length=1, pattern=r"^[^:\s#+/]+$")
    password: SecretStr
    # Sites whose JSON topics (``{mqtt.topic_prefix}/{site}/#``) this account may publish.
    # No wildcards, slashes or whitespace: each entry becomes one line of the ACL file.
    sites: list[Annotated[str, Field(pattern=r"^[^\s#+/]+$")]] = Field(default_factory=list)
    # Further topic filters it may publish to, e.g. ``spBv1.0/{group}/#`` for Sparkplug.
    topics: list[Annotated[str, Field(pattern=r"^\S+$")]] = Field(default_factory=list)


class KafkaScramUser(Section):
    """A SCRAM-SHA-512 account of the local Kafka's SASL_SSL listener."""

    # No commas, '=' or quotes: the name goes into Kafka's `--add-scram` argument.
    username: str = Field(min_length=1, pattern=r"^[^\s,=\"\[\]]+$")
    password: SecretStr


class StackSettings(Section):
    """Where the stack keeps its files and how long each service may take to start."""

    home: Path = Field(default_factory=default_home, validate_default=True)
    kafka_version: str = Field(default="4.1.1", pattern=r"^\d+\.\d+\.\d+$")
    kafka_controller_port: int = Field(default=19093, ge=1, le=65535)
    kafka_heap_min: str = "512m"
    kafka_heap_max: str = "1g"
    mosquitto_start_timeout_s: float = Field(default=20.0, gt=0)
    postgres_start_timeout_s: float = Field(default=60.0, gt=0)
    kafka_start_timeout_s: float = Field(default=120.0, gt=0)
    # Broker-side MQTT security (client-side settings are in the ``mqtt`` section).
    # With mqtt.username set, an ACL gives that account (the bridge) every topic and
    # each gateway account only its own sites; with mqtt.tls the listener speaks TLS
    # with this certificate and key (mqtt.ca_file is what clients verify it with).
    mqtt_gateways: list[MqttGatewayUser] = Field(default_factory=list)
    mqtt_tls_certfile: Path | None = None
    mqtt_tls_keyfile: Path | None = None
    # Broker-side Kafka security: an extra SASL_SSL listener (SCRAM-SHA-512 over TLS with
    # this PEM certificate and PKCS#8 key) next to the PLAINTEXT one of
    # kafka.bootstrap_servers, which stays for inter-broker traffic and the stack's own
    # health check. The SCRAM accounts are created when the storage is formatted (first
    # start of a home); clients use kafka.security_protocol SASL_SSL on this port.
    kafka_sasl_ssl_port: int | None = Field(default=None, ge=1, le=65535)
    kafka_tls_certfile: Path | None = None
    kafka_tls_keyfile: Path | None = None
    kafka_scram_users: list[KafkaScramUser] = Field(default_factory=list)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # Daemons run with other working directories, so a relative home must be pinned
        # to the directory the command was started from.
        return Path(value).expanduser().absolute()

    def start_timeout_s(self, service: str) -> float:
        """Seconds ``service`` may take from spawn until its health check passes."""
        timeout: float = getattr(self, f"{service}_start_timeout_s")
        return timeout


class StackProcessSettings(BaseProcessSettings):
    """The shared sections plus the optional ``stack:`` section of a config file."""

    stack: StackSettings = Field(default_factory=StackSettings)


def load_stack_settings(
    config_file: Path | None = None, home: Path | None = None
) -> tuple[StackSettings, BaseProcessSettings]:
    """Load stack and connection settings: defaults < config file < environment < flags.

    ``config_file`` falls back to ``$CHEMWATCH_CONFIG`` (see :func:`load_settings`). The
    home directory is, first match wins: ``home`` (the ``--home`` flag), ``stack.home``
    from the environment (``CHEMWATCH_STACK__HOME``) or the config file,
    ``$CHEMWATCH_STACK_HOME``, ``.chemwatch`` under the current directory.
    """
    overrides: dict[str, Any] = {"stack": {"home": home}} if home is not None else {}
    loaded = load_settings(StackProcessSettings, config_file, overrides=overrides)
    return loaded.stack, loaded
