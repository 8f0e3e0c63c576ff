"""Settings shared by every process: connection settings and how they are loaded.

Precedence, lowest to highest: defaults < config file (YAML) < environment
(``CHEMWATCH_SECTION__KEY``) < CLI flags. Each process builds one frozen settings
object at start-up with :func:`load_settings` and passes it down; nothing else reads
the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from psycopg.conninfo import make_conninfo
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from common.errors import ConfigError

ENV_PREFIX = "CHEMWATCH_"
ENV_NESTED = "__"
CONFIG_FILE_ENV = "CHEMWATCH_CONFIG"


class Section(BaseModel):
    """Base for a settings section: frozen, unknown keys are errors (typos must not pass)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    readings_topic: str = "readings"
    dlq_topic: str = "readings.dlq"
    conditions_topic: str = "conditions"
    alarms_topic: str = "alarms"
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)


class MqttSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=11883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    topic_prefix: str = "chemwatch/v1"
    keepalive_s: int = Field(default=30, ge=5)
    qos: Literal[0, 1, 2] = 1


class DatabaseSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=15432, ge=1, le=65535)
    dbname: str = "chemwatch"
    user: str = "chemwatch"
    password: SecretStr = SecretStr("chemwatch")
    db_schema: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]*$")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"

    def conninfo(self) -> str:
        """libpq connection string; the password is included, so never log the result.

        Values are quoted by libpq's rules, so a password with spaces, quotes or
        backslashes works (and never ends up in a "syntax error" message).
        """
        return make_conninfo(
            host=self.host,
            port=str(self.port),
            dbname=self.dbname,
            user=self.user,
            password=self.password.get_secret_value(),
            sslmode=self.sslmode,
            options=f"-c search_path={self.db_schema},public",
        )

    def describe(self) -> str:
        """Where we connect, for messages: host, port, database, user, never the password."""
        return f"PostgreSQL {self.host}:{self.port} database {self.dbname!r} user {self.user!r}"


class HttpSettings(Section):
    """Where a process serves /metrics and /healthz (and, for alerting, its API)."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)


class BaseProcessSettings(Section):
    """Sections every process has; each process subclasses this with its own section."""

    plant: Path = Path("examples/plant.yaml")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    mqtt: MqttSettings = MqttSettings()
    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()


# Sections a shared config file may hold; a process ignores the sections of others
# but a key outside this list is a typo and is reported.
KNOWN_TOP_LEVEL = {
    "plant",
    "log_level",
    "kafka",
    "mqtt",
    "database",
    "http",
    "ingest",
    "detectors",
    "alerting",
    "simulator",
    "stack",
}

S = TypeVar("S", bound=BaseProcessSettings)


def load_settings(
    cls: type[S],
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> S:
    """Build one frozen settings object: defaults < file < environment < overrides.

    ``overrides`` are nested dicts from CLI flags (``{"mqtt": {"port": 1884}}``).
    ``config_file`` falls back to ``$CHEMWATCH_CONFIG``. Errors name the source
    (file, environment variable or flag), the key and the problem.
    """
    env = dict(os.environ if environ is None else environ)
    if config_file is None and env.get(CONFIG_FILE_ENV):
        config_file = Path(env[CONFIG_FILE_ENV])
    file_data = _read_config_file(config_file) if config_file else {}
    env_data = _env_to_nested(env)
    cli_data = _drop_none(dict(overrides or {}))

    own = set(cls.model_fields)
    merged: dict[str, Any] = {}
    for layer in (file_data, env_data, cli_data):
        _deep_merge(merged, {k: v for k, v in layer.items() if k in own})
    try:
        return cls.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        source = _source_of(loc, config_file, file_data, env_data, cli_data)
        raise ConfigError(source, ".".join(loc), err["msg"]) from exc


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read config file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "top level must be a mapping of sections")
    for key in data:
        if key not in KNOWN_TOP_LEVEL:
            known = ", ".join(sorted(KNOWN_TOP_LEVEL))
            raise ConfigError(str(path), str(key), f"unknown section (known: {known})")
    return data


def _env_to_nested(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_FILE_ENV:
            continue
        path = name[len(ENV_PREFIX) :].lower().split(ENV_NESTED)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = _maybe_json(value)
    return out


def _maybe_json(value: str) -> Any:
    """Lists and mappings come from the environment as JSON (e.g. API users)."""
    if value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _deep_merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = {}
            _deep_merge(into[key], value)
        else:
            into[key] = value


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out


def _has_path(data: Mapping[str, Any], loc: list[str]) -> bool:
    node: Any = data
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _source_of(
    loc: list[str],
    config_file: Path | None,
    file_data: Mapping[str, Any],
    env_data: Mapping[str, Any],
    cli_data: Mapping[str, Any],
) -> str:
    if _has_path(cli_data, loc):
        return "command-line flag --" + "-".join(loc).replace("_", "-")
    if _has_path(env_data, loc):
        return "environment variable " + ENV_PREFIX + ENV_NESTED.join(loc).upper()
    if config_file is not None and _has_path(file_data, loc):
        return str(config_file)
    return str(config_file) if config_file else "settings"
