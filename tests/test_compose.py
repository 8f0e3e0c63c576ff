"""Static checks of docker-compose.yml, the Dockerfile and the deploy/ files (no Docker needed)."""

from __future__ import annotations

import fnmatch
import inspect
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel

from chemwatch.stack.mosquitto import render_mosquitto_conf
from common import settings as settings_module
from common.settings import BaseProcessSettings, load_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources"

INFRA = ("timescaledb", "kafka", "mosquitto", "prometheus", "grafana")
CHEMWATCH = {
    "ingest": "ingest",
    "detectors": "detect",
    "alerting": "alerting",
    "simulator": "simulate",
}

# ${VAR}, ${VAR:-default}, ${VAR-default}; "$$" is a literal "$" for compose.
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: Any) -> str:
    """Resolve compose interpolation with the file's own defaults (no shell environment)."""
    text = str(value)
    # "$$" first: "$${HOSTNAME}" is the literal "${HOSTNAME}" for the container's shell.
    return INTERPOLATION.sub(
        lambda m: "$" if m.group(0) == "$$" else m.group("default") or "", text
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    assert isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = compose["services"]
    return out


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {k: interpolate(v) for k, v in pairs}
    return {str(k): interpolate(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def bind_sources(service: dict[str, Any]) -> list[str]:
    out = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                out.append(str(volume["source"]))
        elif str(volume).startswith((".", "/")):
            out.append(str(volume).split(":", 1)[0])
    return out


def http_port(service: dict[str, Any]) -> int:
    return int(environment(service)["CHEMWATCH_HTTP__PORT"])


# --------------------------------------------------------------------------- services


def test_required_services_exist(services: dict[str, Any]) -> None:
    missing = set(INFRA) | set(CHEMWATCH)
    missing -= set(services)
    assert not missing, f"docker-compose.yml lacks services {sorted(missing)}"


def test_every_service_has_an_image_or_a_build(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_build_contexts_and_dockerfiles_exist(services: dict[str, Any]) -> None:
    built = 0
    for name, service in services.items():
        build = service.get("build")
        if build is None:
            continue
        built += 1
        if isinstance(build, str):
            build = {"context": build}
        context = ROOT / build.get("context", ".")
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
    assert built >= len(CHEMWATCH)


def test_chemwatch_services_share_one_image_and_pick_a_subcommand(
    services: dict[str, Any],
) -> None:
    builds = {json.dumps(services[name].get("build"), sort_keys=True) for name in CHEMWATCH}
    assert len(builds) == 1, "all ChemWatch services build from the same Dockerfile"
    for name, subcommand in CHEMWATCH.items():
        assert chemwatch_argv(services[name]["command"])[:2] == ["chemwatch", subcommand], name


def chemwatch_argv(command: list[str]) -> list[str]:
    """The chemwatch command line, also when wrapped in ``sh -c "exec chemwatch ..."``."""
    if command[:2] == ["sh", "-c"]:
        words = shlex.split(interpolate(command[2]))
        assert words[0] == "exec", f"{command}: sh must exec (signals reach chemwatch)"
        return words[1:]
    return command


def test_bind_mounted_host_paths_exist(services: dict[str, Any]) -> None:
    mounts = 0
    for name, service in services.items():
        for source in bind_sources(service):
            assert source.startswith("./"), f"{name}: bind mount {source} is not repo-relative"
            assert (ROOT / source).exists(), f"{name}: bind-mounted {source} does not exist"
            mounts += 1
    assert mounts >= 3  # mosquitto.conf, prometheus.yml, grafana provisioning


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, str) and not volume.startswith((".", "/")):
                assert volume.split(":", 1)[0] in declared, f"{name}: {volume}"


def test_ports_are_host_container_pairs_without_collisions(services: dict[str, Any]) -> None:
    seen: dict[int, str] = {}
    for name, service in services.items():
        for port in service.get("ports") or []:
            assert isinstance(port, str), (
                f"{name}: quote port {port!r} as a 'host:container' string"
            )
            host, sep, container = port.partition(":")
            assert sep, f"{name}: port {port!r} is not 'host:container'"
            host_port, container_port = int(host), int(container.split("/")[0])
            assert host_port in range(1, 65536), f"{name}: {port}"
            assert container_port in range(1, 65536), f"{name}: {port}"
            assert host_port not in seen, f"host port {host_port}: {seen.get(host_port)} and {name}"
            seen[host_port] = name
    assert seen.get(8080) == "alerting"


def test_depends_on_targets_exist_and_health_conditions_have_healthchecks(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on undefined service {target}"
            assert target != name
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}'s health"
    assert "pg_isready" in json.dumps(services["timescaledb"]["healthcheck"])


# --------------------------------------------------------------------------- settings


def settings_field(env_name: str) -> None:
    """Walk CHEMWATCH_A__B__C through the pydantic fields of BaseProcessSettings."""
    path = env_name.removeprefix(settings_module.ENV_PREFIX).lower()
    parts = path.split(settings_module.ENV_NESTED)
    model: type[BaseModel] = BaseProcessSettings
    if parts[0] not in model.model_fields:
        # A process's own section (``detectors`` ...) is declared by that process.
        assert parts[0] in settings_module.KNOWN_TOP_LEVEL, f"{env_name}: unknown section"
        return
    for depth, part in enumerate(parts):
        fields = model.model_fields
        assert part in fields, f"{env_name}: {model.__name__} has no field {part!r}"
        if depth < len(parts) - 1:
            annotation = fields[part].annotation
            assert inspect.isclass(annotation), f"{env_name}: {part!r} is not a section"
            assert issubclass(annotation, BaseModel), f"{env_name}: {part!r} is not a section"
            model = annotation


def test_settings_walker_rejects_unknown_names() -> None:
    settings_field("CHEMWATCH_KAFKA__BOOTSTRAP_SERVERS")
    settings_field("CHEMWATCH_PLANT")
    with pytest.raises(AssertionError):
        settings_field("CHEMWATCH_KAFKA__BOOTSTRAP_SERVER")
    with pytest.raises(AssertionError):
        settings_field("CHEMWATCH_PLANT__PATH")
    with pytest.raises(AssertionError):
        settings_field("CHEMWATCH_NOSUCH__KEY")


@pytest.mark.parametrize("name", sorted(CHEMWATCH))
def test_chemwatch_env_names_map_onto_settings_fields(services: dict[str, Any], name: str) -> None:
    env = environment(services[name])
    chemwatch_vars = [k for k in env if k.startswith(settings_module.ENV_PREFIX)]
    for required in (
        "CHEMWATCH_PLANT",
        "CHEMWATCH_KAFKA__BOOTSTRAP_SERVERS",
        "CHEMWATCH_MQTT__HOST",
        "CHEMWATCH_MQTT__PORT",
        "CHEMWATCH_DATABASE__HOST",
        "CHEMWATCH_DATABASE__PORT",
        "CHEMWATCH_HTTP__HOST",
        "CHEMWATCH_HTTP__PORT",
    ):
        assert required in chemwatch_vars, f"{name}: {required} not set"
    for var in chemwatch_vars:
        if var != settings_module.CONFIG_FILE_ENV:
            settings_field(var)


@pytest.mark.parametrize("name", sorted(CHEMWATCH))
def test_chemwatch_env_values_validate(services: dict[str, Any], name: str) -> None:
    """The environment, with compose defaults filled in, builds valid settings."""
    env = environment(services[name])
    loaded = load_settings(BaseProcessSettings, environ=env)
    assert loaded.kafka.bootstrap_servers == "kafka:9092"
    assert loaded.mqtt.host in services
    assert loaded.database.host in services
    assert loaded.http.host == "0.0.0.0"
    assert loaded.http.port == http_port(services[name])
    assert loaded.plant.as_posix() == "/app/examples/plant.yaml"


def test_chemwatch_connection_targets_match_infra(services: dict[str, Any]) -> None:
    kafka_env = environment(services["kafka"])
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    postgres_env = environment(services["timescaledb"])
    mosquitto_conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    mqtt_listeners = re.findall(r"^\s*listener\s+(\d+)", mosquitto_conf, re.MULTILINE)
    for name in CHEMWATCH:
        env = environment(services[name])
        assert f"//{env['CHEMWATCH_KAFKA__BOOTSTRAP_SERVERS']}" in advertised, name
        assert env["CHEMWATCH_MQTT__PORT"] in mqtt_listeners, name
        assert env["CHEMWATCH_DATABASE__PORT"] == "5432", name
        assert env.get("CHEMWATCH_DATABASE__DBNAME", "chemwatch") == postgres_env["POSTGRES_DB"]
        assert env.get("CHEMWATCH_DATABASE__USER", "chemwatch") == postgres_env["POSTGRES_USER"]
        assert (
            env.get("CHEMWATCH_DATABASE__PASSWORD", "chemwatch")
            == postgres_env["POSTGRES_PASSWORD"]
        )


def test_credentials_use_overridable_defaults(services: dict[str, Any]) -> None:
    raw = services["timescaledb"]["environment"]
    assert str(raw["POSTGRES_PASSWORD"]).startswith("${")
    assert "local dev" in COMPOSE.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- prometheus


def test_prometheus_scrapes_every_chemwatch_service_on_its_http_port(
    services: dict[str, Any],
) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    scraped: dict[str, int] = {}
    for job in config["scrape_configs"]:
        if job["job_name"] == "prometheus":
            continue  # self-scrape
        assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
        targets = [t for static in job.get("static_configs", []) for t in static["targets"]]
        # DNS service discovery: one target per replica of a scaled service.
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A", job["job_name"]
            targets += [f"{name}:{sd['port']}" for name in sd["names"]]
        for target in targets:
            host, _, port = target.rpartition(":")
            assert host in services, f"scrape target {target}: no compose service {host}"
            assert int(port) == http_port(services[host]), f"{target}: wrong port"
            scraped[host] = int(port)
    assert set(scraped) == set(CHEMWATCH)
    assert len(set(scraped.values())) == len(scraped)


# --------------------------------------------------------------------------- scale-out

SCALABLE = ("ingest", "detectors")  # docker compose up --scale ingest=2 --scale detectors=3


@pytest.mark.parametrize("name", SCALABLE)
def test_scalable_services_have_no_fixed_name_or_host_port(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    # Each of these would make a second replica fail to start (or clash with the first).
    for key in ("container_name", "hostname", "ports"):
        assert key not in service, f"{name}: {key} stops `--scale {name}=N`"
    assert "deploy" not in service or "replicas" not in (service["deploy"] or {})


def test_each_ingest_replica_has_its_own_mqtt_client_id(services: dict[str, Any]) -> None:
    argv = chemwatch_argv(services["ingest"]["command"])
    env = environment(services["ingest"])
    assert "CHEMWATCH_INGEST__CLIENT_ID" not in env, "one fixed id for every replica"
    client_id = argv[argv.index("--client-id") + 1]
    # Docker sets HOSTNAME to the container id: unique per replica.
    assert "${HOSTNAME}" in client_id
    # ... and the replicas share one subscription group (the default), not one each.
    assert "CHEMWATCH_INGEST__SHARE_GROUP" not in env
    assert "--share-group" not in argv


def test_scaled_services_are_scraped_per_replica() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in SCALABLE:
        names = [n for sd in jobs[name].get("dns_sd_configs", []) for n in sd["names"]]
        assert names == [name], f"{name}: a static target would scrape one replica only"


# --------------------------------------------------------------------------- grafana


def test_grafana_datasources_point_at_compose_services(services: dict[str, Any]) -> None:
    mounts = bind_sources(services["grafana"])
    assert any((ROOT / m).resolve() == GRAFANA_DATASOURCES.parent.resolve() for m in mounts), (
        "grafana must mount deploy/grafana/provisioning/"
    )
    files = sorted(GRAFANA_DATASOURCES.glob("*.y*ml"))
    assert files, "no datasource file in deploy/grafana/provisioning/datasources/"
    sources = []
    for file in files:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        assert doc["apiVersion"] == 1, file
        sources.extend(doc["datasources"])
    by_type: dict[str, dict[str, Any]] = {}
    for source in sources:
        by_type.setdefault(source["type"], source)

    postgres = by_type.get("postgres") or by_type["grafana-postgresql-datasource"]
    host, _, port = postgres["url"].partition(":")
    assert host == "timescaledb"
    assert host in services
    assert port == "5432"
    assert postgres["jsonData"]["timescaledb"] is True
    assert postgres["jsonData"]["database"] == environment(services["timescaledb"])["POSTGRES_DB"]

    prometheus = urlsplit(by_type["prometheus"]["url"])
    assert prometheus.hostname == "prometheus"
    assert prometheus.hostname in services
    assert f"{prometheus.port}:{prometheus.port}" in services["prometheus"]["ports"]


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, list[str]]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        out.append((keyword.upper(), args))
    return out


def dockerignore_patterns() -> list[str]:
    path = ROOT / ".dockerignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [ln.strip().strip("/") for ln in lines if ln.strip() and not ln.startswith("#")]


def ignored(source: str, patterns: list[str]) -> bool:
    source = source.strip("/")
    return any(
        fnmatch.fnmatch(source, p) or source.startswith(p + "/")
        for p in patterns
        if not p.startswith("!")
    )


def test_dockerfile_copy_sources_exist_and_are_not_ignored() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM"
    assert instructions[0][1][0].startswith("python:3.11")
    patterns = dockerignore_patterns()
    copies = 0
    for keyword, args in instructions:
        if keyword not in ("COPY", "ADD"):
            continue
        if any(a.startswith("--from") for a in args):
            continue  # copies from another build stage, not from the repo
        args = [a for a in args if not a.startswith("--")]
        sources = args[:-1]
        assert sources, f"{keyword} {args}: no source"
        matched = 0
        for source in sources:
            if any(ch in source for ch in "*?["):
                found = list(ROOT.glob(source))
            else:
                assert (ROOT / source).exists(), f"COPY source {source} does not exist"
                found = [ROOT / source]
            for path in found:
                assert not ignored(str(path.relative_to(ROOT)), patterns), f"{source} ignored"
            matched += len(found)
        assert matched, f"{keyword} {args}: no source matches"
        copies += 1
    assert copies >= 2


def test_dockerfile_ships_the_plant_named_by_compose(services: dict[str, Any]) -> None:
    workdir = next(a[0] for k, a in dockerfile_instructions() if k == "WORKDIR")
    copied = [a[-1] for k, a in dockerfile_instructions() if k == "COPY"]
    for name in CHEMWATCH:
        plant = environment(services[name])["CHEMWATCH_PLANT"]
        relative = Path(plant).relative_to(workdir)
        assert (ROOT / relative).is_file(), f"{name}: {plant} has no source in the repo"
        assert f"{relative.parts[0]}/" in copied, f"{name}: {relative.parts[0]}/ not copied"


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv", ".chemwatch", ".git", "common/__pycache__", ".pytest_cache"):
        assert ignored(path, patterns), f"{path} is not in .dockerignore"


def test_compose_broker_keeps_the_stack_brokers_delivery_settings(tmp_path: Path) -> None:
    def settings(text: str) -> dict[str, str]:
        pairs = (line.split(None, 1) for line in text.splitlines() if line.strip())
        return {k: v.strip() for k, v in pairs if not k.startswith("#")}

    stack = settings(render_mosquitto_conf("127.0.0.1", 1883, tmp_path))
    compose = settings((ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text())
    # what decides throughput and what a broker crash or a slow consumer may lose
    for key in (
        "persistence", "autosave_interval", "autosave_on_changes", "max_queued_messages",
        "max_queued_bytes", "max_inflight_messages", "max_packet_size", "queue_qos0_messages",
        "set_tcp_nodelay",
    ):  # fmt: skip
        assert compose.get(key) == stack[key], key
