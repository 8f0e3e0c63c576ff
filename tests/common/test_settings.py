from pathlib import Path

import pytest

from common.errors import ConfigError
from common.settings import BaseProcessSettings, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chemwatch.yaml"
    path.write_text(text)
    return path


def test_defaults_file_env_flags_in_order_of_precedence(tmp_path: Path) -> None:
    cfg = write(tmp_path, "mqtt:\n  host: file-host\n  port: 2000\ndatabase:\n  dbname: fromfile\n")
    env = {"CHEMWATCH_MQTT__PORT": "3000", "CHEMWATCH_DATABASE__DBNAME": "fromenv"}
    s = load_settings(BaseProcessSettings, cfg, {"database": {"dbname": "fromflag"}}, env)
    assert s.mqtt.host == "file-host"  # file beats default
    assert s.mqtt.port == 3000  # environment beats file
    assert s.database.dbname == "fromflag"  # flag beats environment
    assert s.kafka.readings_topic == "readings"  # default kept


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    cfg = write(tmp_path, "log_level: DEBUG\n")
    s = load_settings(BaseProcessSettings, environ={"CHEMWATCH_CONFIG": str(cfg)})
    assert s.log_level == "DEBUG"


def test_settings_are_frozen() -> None:
    s = load_settings(BaseProcessSettings, environ={})
    with pytest.raises(ValueError, match="frozen"):
        s.mqtt.port = 1  # type: ignore[misc]


def test_secrets_are_not_printed() -> None:
    s = load_settings(BaseProcessSettings, environ={"CHEMWATCH_DATABASE__PASSWORD": "hunter2"})
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.model_dump())
    assert s.database.password.get_secret_value() == "hunter2"


def test_bad_value_in_file_names_file_key_and_problem(tmp_path: Path) -> None:
    cfg = write(tmp_path, "mqtt:\n  port: 99999\n")
    with pytest.raises(ConfigError) as err:
        load_settings(BaseProcessSettings, cfg, environ={})
    assert str(cfg) in str(err.value)
    assert "mqtt.port" in str(err.value)
    assert "65535" in str(err.value)


def test_bad_value_in_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"environment variable CHEMWATCH_MQTT__PORT: mqtt\.port"):
        load_settings(BaseProcessSettings, environ={"CHEMWATCH_MQTT__PORT": "many"})


def test_bad_flag_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--mqtt-port"):
        load_settings(BaseProcessSettings, overrides={"mqtt": {"port": -1}}, environ={})


def test_unknown_key_in_section_is_an_error(tmp_path: Path) -> None:
    cfg = write(tmp_path, "kafka:\n  bootstrap: x:1\n")
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap: Extra inputs"):
        load_settings(BaseProcessSettings, cfg, environ={})


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    cfg = write(tmp_path, "kafak:\n  x: 1\n")
    with pytest.raises(ConfigError, match="kafak: unknown section"):
        load_settings(BaseProcessSettings, cfg, environ={})


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(BaseProcessSettings, tmp_path / "absent.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(BaseProcessSettings, write(tmp_path, "a: [\n"), environ={})
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_settings(BaseProcessSettings, write(tmp_path, "- 1\n"), environ={})


def test_conninfo_uses_schema_in_search_path() -> None:
    s = load_settings(BaseProcessSettings, environ={"CHEMWATCH_DATABASE__DB_SCHEMA": "plant_a"})
    assert "search_path=plant_a,public" in s.database.conninfo()
