"""Tests of `chemwatch stack`: config generation, PID files and CLI wiring (unit), and
up/status/down against real services (integration).

The integration tests never run `down` on the shared default home: other integration
tests use that stack. `down` is exercised on a separate Mosquitto-only stack in a
temporary home on a free port.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from chemwatch.stack import StackError, StackSettings, add_parser, load_stack_settings
from chemwatch.stack import process as proc
from chemwatch.stack.cli import EXIT_FAILED, EXIT_NOT_RUNNING
from chemwatch.stack.kafka import Kafka, new_cluster_id, render_pom, render_server_properties
from chemwatch.stack.manager import ServiceReport, pids, select_services, status, up
from chemwatch.stack.mosquitto import Mosquitto, render_mosquitto_conf
from chemwatch.stack.postgres import Postgres, render_postgres_conf
from common.settings import BaseProcessSettings, DatabaseSettings, KafkaSettings, MqttSettings

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _props(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert key not in out, f"duplicate key {key}"
            out[key] = value
    return out


def _isolated_settings(tmp_path: Path) -> tuple[StackSettings, BaseProcessSettings]:
    """Settings on free ports in a temporary home: nothing here touches the real stack."""
    settings = BaseProcessSettings(
        mqtt=MqttSettings(port=_free_port()),
        database=DatabaseSettings(port=_free_port()),
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{_free_port()}"),
    )
    stack = StackSettings(home=tmp_path / "home", kafka_controller_port=_free_port())
    return stack, settings


# ----------------------------------------------------------------- settings & CLI


def test_stack_settings_defaults_are_absolute_and_documented(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CHEMWATCH_STACK_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    stack = StackSettings()
    assert stack.home == tmp_path / ".chemwatch"
    assert stack.kafka_version == "4.1.1"
    assert stack.kafka_controller_port == 19093
    assert stack.start_timeout_s("mosquitto") == 20
    assert stack.start_timeout_s("postgres") == 60
    assert stack.start_timeout_s("kafka") == 120
    with pytest.raises(ValueError, match="frozen"):
        stack.home = tmp_path  # type: ignore[misc]


def test_load_stack_settings_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CHEMWATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "chemwatch.yaml"
    config.write_text("mqtt:\n  port: 21883\nstack:\n  kafka_start_timeout_s: 30\n")

    stack, settings = load_stack_settings(config)
    assert settings.mqtt.port == 21883
    assert settings.database.port == 15432
    assert stack.kafka_start_timeout_s == 30
    assert stack.home == tmp_path / ".chemwatch"

    monkeypatch.setenv("CHEMWATCH_STACK_HOME", str(tmp_path / "from-env"))
    assert load_stack_settings(config)[0].home == tmp_path / "from-env"
    assert load_stack_settings(config, Path("flag"))[0].home == tmp_path / "flag"


def test_select_services_keeps_start_order_and_rejects_unknown() -> None:
    assert select_services(None) == ["mosquitto", "postgres", "kafka"]
    assert select_services(["kafka", "mosquitto"]) == ["mosquitto", "kafka"]
    with pytest.raises(StackError, match="redis"):
        select_services(["redis"])


def _main_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chemwatch")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_add_parser_registers_stack_commands() -> None:
    args = _main_parser().parse_args(
        ["stack", "up", "--home", "h", "--config", "c.yaml", "--only", "mosquitto,kafka"]
    )
    assert args.stack_command == "up"
    assert args.home == Path("h")
    assert args.config == Path("c.yaml")
    assert args.only == ["mosquitto", "kafka"]
    assert callable(args.func)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["stack", "--help"],
        ["stack", "up", "--help"],
        ["stack", "down", "--help"],
        ["stack", "status", "--help"],
    ],
)
def test_every_level_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _main_parser().parse_args(argv)
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["stack"], ["stack", "up", "--only", "mosquitto,redis"]])
def test_bad_command_lines_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _main_parser().parse_args(argv)
    assert exc.value.code == 2


def test_status_of_a_stack_that_never_ran_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack, settings = _isolated_settings(tmp_path)
    reports = status(stack, settings)
    assert [r.state for r in reports] == ["stopped", "stopped", "stopped"]
    assert not any(r.ok for r in reports)
    assert len(capsys.readouterr().out.splitlines()) == 3

    config = tmp_path / "c.yaml"
    config.write_text(f"mqtt:\n  port: {settings.mqtt.port}\n")
    args = _main_parser().parse_args(
        [
            "stack",
            "status",
            "--home",
            str(stack.home),
            "--config",
            str(config),
            "--only",
            "mosquitto",
        ]
    )
    assert args.func(args) == EXIT_NOT_RUNNING


def test_up_refuses_a_port_held_by_someone_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack, settings = _isolated_settings(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", settings.mqtt.port))
        squatter.listen()
        taken = f"port 127.0.0.1:{settings.mqtt.port} is already in use"
        with pytest.raises(StackError, match=taken):
            up(stack, settings, ["mosquitto"])
        config = tmp_path / "c.yaml"
        config.write_text(f"mqtt:\n  port: {settings.mqtt.port}\n")
        args = _main_parser().parse_args(
            [
                "stack",
                "up",
                "--home",
                str(stack.home),
                "--config",
                str(config),
                "--only",
                "mosquitto",
            ]
        )
        assert args.func(args) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err  # names who holds the port
    assert not (stack.home / "mosquitto" / "mosquitto.pid").exists()


def test_report_line_format() -> None:
    line = ServiceReport(
        "mosquitto", "up", "mqtt://127.0.0.1:11883", 42, Path("/nowhere/mosquitto.log")
    ).line()
    assert line.startswith("mosquitto  up ")
    assert "mqtt://127.0.0.1:11883  pid 42  (log: /nowhere/mosquitto.log)" in line


# ------------------------------------------------------------- generated configs


def test_mosquitto_conf_anonymous(tmp_path: Path) -> None:
    conf = render_mosquitto_conf("127.0.0.1", 11883, tmp_path / "data")
    lines = conf.splitlines()
    assert "listener 11883 127.0.0.1" in lines
    assert "allow_anonymous true" in lines
    assert "persistence true" in lines
    assert f"persistence_location {tmp_path / 'data'}" in lines
    assert "autosave_interval 1" in lines
    assert "max_queued_messages 1000000" in lines
    assert "max_packet_size 10485760" in lines
    assert "log_dest stderr" in lines
    assert not any(line.startswith("password_file") for line in lines)
    # Options removed or deprecated in Mosquitto 2.0 must not appear.
    removed = ("message_size_limit", "port ", "bind_address")
    assert not any(line.startswith(removed) for line in lines)


def test_mosquitto_conf_with_password_file(tmp_path: Path) -> None:
    conf = render_mosquitto_conf("127.0.0.1", 1884, tmp_path, tmp_path / "passwd")
    assert "allow_anonymous false" in conf.splitlines()
    assert f"password_file {tmp_path / 'passwd'}" in conf.splitlines()


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    props = _props(render_server_properties("127.0.0.1", 19092, 19093, tmp_path / "data"))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["num.partitions"] == "6"
    assert props["auto.create.topics.enable"] == "true"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1"


def test_server_properties_follow_settings(tmp_path: Path) -> None:
    stack, settings = _isolated_settings(tmp_path)
    kafka = Kafka(stack, settings)
    port = int(settings.kafka.bootstrap_servers.rsplit(":", 1)[1])
    assert kafka.port == port
    assert kafka.address() == f"kafka://127.0.0.1:{port}"
    assert [e.port for e in kafka.endpoints()] == [port, stack.kafka_controller_port]


def test_pom_pins_kafka_and_a_slf4j_1_binding() -> None:
    root = ET.fromstring(render_pom("4.1.1"))  # noqa: S314 - our own template
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    deps = {
        (
            d.findtext("m:groupId", namespaces=ns),
            d.findtext("m:artifactId", namespaces=ns),
        ): d.findtext("m:version", namespaces=ns)
        for d in root.iterfind("m:dependencies/m:dependency", ns)
    }
    assert deps[("org.apache.kafka", "kafka_2.13")] == "4.1.1"
    assert (
        deps[("org.apache.logging.log4j", "log4j-slf4j-impl")]
        == deps[("org.apache.logging.log4j", "log4j-core")]
    )
    assert "@" not in render_pom("4.1.1").split("-->", 1)[1]


def test_cluster_id_is_a_base64url_uuid() -> None:
    for _ in range(50):
        cid = new_cluster_id()
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_postgres_conf(tmp_path: Path) -> None:
    conf = render_postgres_conf("127.0.0.1", 15432, tmp_path / "run")
    assert "listen_addresses = '127.0.0.1'" in conf
    assert "port = 15432" in conf
    assert f"unix_socket_directories = '{tmp_path / 'run'}'" in conf
    assert "shared_buffers = 256MB" in conf
    assert "track_commit_timestamp = on" in conf
    assert "max_connections = 200" in conf
    assert "fsync = on" in conf
    assert "synchronous_commit = on" in conf


def test_services_recognise_only_their_own_command_lines(tmp_path: Path) -> None:
    stack, settings = _isolated_settings(tmp_path)
    mosq, pg, kafka = Mosquitto(stack, settings), Postgres(stack, settings), Kafka(stack, settings)
    conf = str(stack.home / "mosquitto" / "mosquitto.conf")
    assert mosq.matches(["/usr/sbin/mosquitto", "-c", conf])
    assert not mosq.matches(["/usr/sbin/mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"])
    data = str(stack.home / "postgres" / "data")
    assert pg.matches(["/usr/lib/postgresql/15/bin/postgres", "-D", data])
    assert not pg.matches(["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql"])
    assert not pg.matches(["/bin/sleep", "-D", data])
    props = str(stack.home / "kafka" / "config" / "server.properties")
    assert kafka.matches(["/usr/bin/java", "-cp", "libs/*", "kafka.Kafka", props])
    assert not kafka.matches(["/usr/bin/java", "kafka.Kafka", "/opt/kafka/server.properties"])


# ------------------------------------------------------------------- PID files


def test_pid_file_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "svc.pid"
    assert proc.read_pid(path) is None
    proc.write_pid(path, 1234)
    assert path.read_text() == "1234\n"
    assert proc.read_pid(path) == 1234
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind
    proc.remove_pid(path)
    proc.remove_pid(path)  # twice is fine
    assert not path.exists()


@pytest.mark.parametrize("content", ["", "abc", "-5", "0", "12 34", "\x00\x01"])
def test_garbage_pid_files_read_as_none(tmp_path: Path, content: str) -> None:
    path = tmp_path / "svc.pid"
    path.write_text(content)
    assert proc.read_pid(path) is None


def _sleeper_matches(argv: Sequence[str]) -> bool:
    return len(argv) >= 2 and os.path.basename(argv[0]) == "sleep" and argv[1] == "300"


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    pid_path = tmp_path / "sleep.pid"
    child = proc.start_daemon(["sleep", "300"], log_path=tmp_path / "sleep.log", pid_path=pid_path)
    yield pid_path, child.pid
    if proc.is_alive(child.pid):
        child.kill()
    child.wait()


def test_start_daemon_detaches_and_stop_removes_the_pid_file(
    sleeper: tuple[Path, int], tmp_path: Path
) -> None:
    pid_path, pid = sleeper
    assert proc.read_pid(pid_path) == pid
    assert proc.is_alive(pid)
    assert os.getsid(pid) == pid  # own session: a terminal hang-up does not reach it
    assert proc.running_pid(pid_path, _sleeper_matches) == pid
    assert "starting sleep 300" in (tmp_path / "sleep.log").read_text()

    result = proc.stop(pid_path, _sleeper_matches, timeout_s=5)
    assert result == proc.StopResult("stopped", pid, killed=False)
    assert not proc.is_alive(pid)
    assert not pid_path.exists()
    assert proc.stop(pid_path, _sleeper_matches) == proc.StopResult("not running")


def test_stop_never_signals_a_recycled_pid(sleeper: tuple[Path, int]) -> None:
    pid_path, pid = sleeper

    def not_ours(argv: Sequence[str]) -> bool:
        return False

    assert proc.running_pid(pid_path, not_ours) is None
    result = proc.stop(pid_path, not_ours, timeout_s=1)
    assert result.outcome == "stale pid file"
    assert proc.is_alive(pid)  # left alone
    assert not pid_path.exists()


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    pid_path = tmp_path / "stubborn.pid"
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(300)"
    )
    child = proc.start_daemon(
        [sys.executable, "-c", code, "stubborn-marker"],
        log_path=tmp_path / "stubborn.log",
        pid_path=pid_path,
    )
    try:
        deadline = time.monotonic() + 10
        # A line of its own: the log's header quotes the command, which contains "ready".
        while "ready" not in (tmp_path / "stubborn.log").read_text().splitlines():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        result = proc.stop(pid_path, lambda argv: "stubborn-marker" in argv, timeout_s=0.5)
        assert result.outcome == "stopped"
        assert result.killed
        assert child.wait(5) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_dead_and_zombie_processes_are_not_alive(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while proc.is_alive(child.pid):  # a zombie until reaped
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.wait()
    assert not proc.is_alive(child.pid)
    pid_path = tmp_path / "dead.pid"
    proc.write_pid(pid_path, child.pid)
    assert proc.running_pid(pid_path, lambda argv: True) is None
    assert proc.stop(pid_path, lambda argv: True).outcome == "not running"
    assert not pid_path.exists()


# ----------------------------------------------------------------- integration


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chemwatch.stack", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def shared_stack(monkeypatch: pytest.MonkeyPatch) -> tuple[StackSettings, BaseProcessSettings]:
    """Settings of the shared stack as the CLI sees them when run from the repository."""
    monkeypatch.chdir(REPO)
    return load_stack_settings()


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_up_twice_is_harmless(shared_stack: tuple[StackSettings, BaseProcessSettings]) -> None:
    first = _cli("up")
    assert first.returncode == 0, first.stderr
    before = pids(*shared_stack)
    assert all(before.values()), before

    second = _cli("up")
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert len(lines) == 3
    for line, name in zip(lines, ("mosquitto", "postgres", "kafka"), strict=True):
        assert line.split()[0] == name
        assert "already running" in line
        assert f"pid {before[name]}" in line
    assert pids(*shared_stack) == before


@pytest.mark.integration
def test_status_reports_running(shared_stack: tuple[StackSettings, BaseProcessSettings]) -> None:
    done = _cli("status")
    assert done.returncode == 0, done.stdout + done.stderr
    running = pids(*shared_stack)
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    for line, name in zip(lines, ("mosquitto", "postgres", "kafka"), strict=True):
        assert line.split()[:2] == [name, "running"]
        assert f"pid {running[name]}" in line


@pytest.mark.integration
def test_postgres_serves_the_configured_role_with_dev_tuning(
    shared_stack: tuple[StackSettings, BaseProcessSettings],
) -> None:
    import psycopg

    _, settings = shared_stack
    with psycopg.connect(settings.database.conninfo()) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (settings.database.user,)
        assert conn.execute("SHOW max_connections").fetchone() == ("200",)
        assert conn.execute("SHOW shared_buffers").fetchone() == ("256MB",)
        assert conn.execute("SHOW fsync").fetchone() == ("on",)


@pytest.mark.integration
def test_persistent_mqtt_session_keeps_a_large_backlog(
    shared_stack: tuple[StackSettings, BaseProcessSettings],
) -> None:
    """More than Mosquitto's default max_queued_messages (100) wait for a client away."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    mqtt = shared_stack[1].mqtt
    topic = f"chemwatch/_test/backlog/{uuid.uuid4().hex}"
    client_id = f"stack-test-{uuid.uuid4().hex[:8]}"
    count = 2000

    def client(cid: str = "", clean: bool = True) -> paho.Client:
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
        if mqtt.username:
            secret = mqtt.password.get_secret_value() if mqtt.password else None
            c.username_pw_set(mqtt.username, secret)
        return c

    subscribed = threading.Event()
    away = client(client_id, clean=False)
    away.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    away.on_subscribe = lambda *_: subscribed.set()
    away.connect(mqtt.host, mqtt.port)
    away.loop_start()
    try:
        assert subscribed.wait(10)
    finally:
        away.disconnect()
        away.loop_stop()

    publisher = client()
    publisher.connect(mqtt.host, mqtt.port)
    publisher.loop_start()
    try:
        infos = [publisher.publish(topic, str(i).encode(), qos=1) for i in range(count)]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        publisher.disconnect()
        publisher.loop_stop()

    received: list[int] = []
    all_in = threading.Event()

    def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        received.append(int(msg.payload))
        if len(received) == count:
            all_in.set()

    back = client(client_id, clean=False)
    back.on_message = on_message
    back.connect(mqtt.host, mqtt.port)
    back.loop_start()
    try:
        assert all_in.wait(30), f"received {len(received)} of {count}"
    finally:
        back.disconnect()
        back.loop_stop()
    # Drop the persistent session so it does not collect messages forever.
    cleanup = client(client_id, clean=True)
    cleanup.connect(mqtt.host, mqtt.port)
    cleanup.disconnect()
    assert sorted(received) == list(range(count))


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_down_stops_only_our_separate_stack(
    tmp_path: Path, shared_stack: tuple[StackSettings, BaseProcessSettings]
) -> None:
    port = _free_port()
    home = tmp_path / "home"
    config = tmp_path / "stack.yaml"
    config.write_text(f"mqtt:\n  port: {port}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEMWATCH_")}
    common = ["--home", str(home), "--config", str(config), "--only", "mosquitto"]
    shared_before = pids(*shared_stack)
    stack = StackSettings(home=home)
    mosquitto = Mosquitto(stack, BaseProcessSettings(mqtt=MqttSettings(port=port)))
    try:
        started = _cli("up", *common, env=env)
        assert started.returncode == 0, started.stderr
        assert f"mqtt://127.0.0.1:{port}" in started.stdout
        pid = proc.read_pid(home / "mosquitto" / "mosquitto.pid")
        assert pid is not None
        assert proc.is_alive(pid)
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass

        stopped = _cli("down", *common, env=env)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.split()[:2] == ["mosquitto", "stopped"]
        assert not proc.is_alive(pid)
        assert not (home / "mosquitto" / "mosquitto.pid").exists()
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), timeout=2),
        ):
            pass
        again = _cli("down", *common, env=env)
        assert again.returncode == 0
        assert "not running" in again.stdout
        assert _cli("status", *common, env=env).returncode == EXIT_NOT_RUNNING
    finally:
        _cli("down", *common, env=env)
        # tmp_path is under a 0700 directory, so the broker's data went to the fallback.
        shutil.rmtree(mosquitto.fallback_dir.parent, ignore_errors=True)
    # The shared stack was not touched.
    assert pids(*shared_stack) == shared_before
