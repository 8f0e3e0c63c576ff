"""Mosquitto: a private broker (own config, data and PID file), never the system service."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from chemwatch.stack.config import MqttGatewayUser, StackError
from chemwatch.stack.service import Endpoint, Launch, NotReady, Service, daemon_env
from chemwatch.stack.system import Account, account, apt_install, chown, find_executable, is_root
from common.settings import MqttSettings

# A persistent session keeps this many QoS>0 messages while its client is away, so a
# consumer that restarts finds a large backlog rather than silently dropped readings.
MAX_QUEUED_MESSAGES = 1_000_000
# Per-client messages in flight (unacknowledged). 0 would mean "no limit", which also
# sets Receive Maximum to 65535 for MQTT 5 clients; a bound keeps redelivery after a
# reconnect orderly while still being far above what one consumer needs.
MAX_INFLIGHT_MESSAGES = 1000
# max_packet_size replaces message_size_limit (deprecated in 2.0); batches of readings
# stay well below this.
MAX_PACKET_SIZE = 10 * 1024 * 1024


def render_mosquitto_conf(
    host: str,
    port: int,
    data_dir: Path,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    tls: tuple[Path, Path] | None = None,
) -> str:
    """The broker configuration: one listener, persistence under ``data_dir``.

    ``acl_file`` restricts what each account may publish and subscribe to; ``tls`` is
    ``(certfile, keyfile)`` for a TLS listener (clients verify it with their CA file).
    """
    lines = [
        "# Written by `chemwatch stack up`; rewritten at every start: edit the settings,",
        "# not this file.",
        "per_listener_settings false",
        f"listener {port} {host}",
    ]
    if tls is not None:
        lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}", "tls_version tlsv1.2"]
    lines += [
        "",
        "persistence true",
        # Mosquitto 2.0 joins location and file name with "/" itself.
        f"persistence_location {data_dir}",
        "persistence_file mosquitto.db",
        "autosave_interval 1",
        "autosave_on_changes false",
        "",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        "max_queued_bytes 0",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        f"max_packet_size {MAX_PACKET_SIZE}",
        "queue_qos0_messages false",
        "set_tcp_nodelay true",
        "",
        # stderr is our log file, opened before the process starts, so this works for
        # whichever account the broker runs as; stdout would be block-buffered.
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "log_timestamp true",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        "",
    ]
    if password_file is None:
        lines.append("allow_anonymous true")
    else:
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    if acl_file is not None:
        lines.append(f"acl_file {acl_file}")
    return "\n".join(lines) + "\n"


def render_acl(bridge_user: str, gateways: Sequence[MqttGatewayUser], topic_prefix: str) -> str:
    """Mosquitto ACL: the bridge account reads and writes everything; a gateway account
    may only publish to its own sites' topics (and any extra filters it is given).

    An account without a ``user`` block here may do nothing at all, so a leaked gateway
    password exposes one site's topics for writing and nothing for reading.
    """
    lines = [
        "# Written by `chemwatch stack up` from stack.mqtt_gateways; rewritten at every start.",
        f"user {bridge_user}",
        "topic readwrite #",
        "",
    ]
    for gateway in gateways:
        lines.append(f"user {gateway.username}")
        filters = [f"{topic_prefix}/{site}/#" for site in gateway.sites] + list(gateway.topics)
        for topic_filter in filters:
            # "/#" also matches the parent level (a gateway batch on {prefix}/{site}).
            lines.append(f"topic write {topic_filter}")
        lines.append("")
    return "\n".join(lines)


def mqtt_roundtrip(mqtt: MqttSettings, host: str, port: int, timeout_s: float) -> None:
    """Connect, subscribe, publish QoS 1 and receive it back; raise :class:`NotReady` if not."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    topic = f"chemwatch/_health/{uuid.uuid4().hex}"
    received = threading.Event()
    failure: list[str] = []
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"chemwatch-stack-health-{uuid.uuid4().hex[:8]}",
        clean_session=True,
    )
    if mqtt.username:
        password = mqtt.password.get_secret_value() if mqtt.password else None
        client.username_pw_set(mqtt.username, password)
    if mqtt.tls:
        client.tls_set(
            ca_certs=str(mqtt.ca_file) if mqtt.ca_file else None,
            certfile=str(mqtt.cert_file) if mqtt.cert_file else None,
            keyfile=str(mqtt.key_file) if mqtt.key_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )

    def on_connect(c: paho.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            failure.append(f"connection refused: {reason}")
            received.set()
            return
        c.subscribe(topic, qos=1)

    def on_subscribe(c: paho.Client, _ud: Any, _mid: int, _codes: Any, _props: Any) -> None:
        c.publish(topic, b"ping", qos=1)

    def on_message(_c: paho.Client, _ud: Any, _msg: Any) -> None:
        received.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise NotReady(f"cannot connect to {host}:{port}: {reason}") from exc
    client.loop_start()
    try:
        if not received.wait(timeout_s):
            raise NotReady("no publish/subscribe round trip within the timeout")
        if failure:
            raise NotReady(failure[0])
    finally:
        client.disconnect()
        client.loop_stop()


class Mosquitto(Service):
    """Mosquitto 2.0 with our own ``mosquitto.conf``."""

    name: ClassVar[str] = "mosquitto"
    stop_timeout_s: ClassVar[float] = 15.0

    @property
    def host(self) -> str:
        """Listen address: the client host setting, with ``localhost`` pinned to IPv4."""
        host = self.settings.mqtt.host
        return "127.0.0.1" if host == "localhost" else host

    @property
    def port(self) -> int:
        """Listen port, from MqttSettings."""
        return self.settings.mqtt.port

    def account(self) -> Account | None:
        """The account the broker runs as: ``mosquitto`` under root, else ourselves."""
        if not is_root():
            return None
        user = account("mosquitto")
        if user is None:
            raise StackError("mosquitto: the `mosquitto` account is missing; reinstall the package")
        return user

    def conf_path(self, base: Path | None = None) -> Path:
        """Our mosquitto.conf (in the service directory)."""
        return (base or self.service_dir(None)) / "mosquitto.conf"

    def endpoints(self) -> list[Endpoint]:
        """The MQTT listener."""
        return [Endpoint(self.host, self.port, "MQTT")]

    def address(self) -> str:
        """``mqtt://host:port``."""
        return f"mqtt://{self.host}:{self.port}"

    def matches(self, argv: Sequence[str]) -> bool:
        """A mosquitto process started with our config file."""
        return (
            bool(argv)
            and os.path.basename(argv[0]) == "mosquitto"
            and str(self.conf_path()) in argv
        )

    def _binary(self) -> str:
        binary = find_executable("mosquitto")
        if binary is None:
            if not is_root():
                raise StackError(
                    "mosquitto is not installed: run `sudo apt-get install -y mosquitto` "
                    "(the stack runs its own broker; the system service is not used)"
                )
            self.note("installing mosquitto with apt-get ...")
            apt_install(["mosquitto"], self.dir / "apt.log")
            binary = find_executable("mosquitto")
            if binary is None:
                raise StackError("mosquitto: apt-get installed the package but no binary found")
        return binary

    def _password_file(self, base: Path, user: Account | None) -> Path | None:
        mqtt = self.settings.mqtt
        path = base / "passwd"
        if not mqtt.username:
            path.unlink(missing_ok=True)
            return None
        accounts = [(mqtt.username, mqtt.password.get_secret_value() if mqtt.password else "")]
        accounts += [(g.username, g.password.get_secret_value()) for g in self.stack.mqtt_gateways]
        names = [name for name, _ in accounts]
        if any(":" in name for name in names):
            raise StackError("mqtt.username must not contain ':'")
        if len(set(names)) != len(names):
            raise StackError(
                "stack.mqtt_gateways: usernames must differ from each other and mqtt.username"
            )
        tool = find_executable("mosquitto_passwd")
        if tool is None:
            raise StackError("mosquitto_passwd not found (it comes with the mosquitto package)")
        # Written in clear and hashed in place with -U so the password never appears in
        # a command line (visible to every user in ps).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.writelines(f"{name}:{password}\n" for name, password in accounts)
        done = subprocess.run(
            [tool, "-U", str(path)],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            path.unlink(missing_ok=True)
            raise StackError(f"mosquitto_passwd failed: {done.stderr.strip() or done.stdout}")
        chown(path, user)
        return path

    def _acl_file(self, base: Path, user: Account | None) -> Path | None:
        mqtt = self.settings.mqtt
        path = base / "acl"
        if not mqtt.username:
            path.unlink(missing_ok=True)
            return None
        path.write_text(render_acl(mqtt.username, self.stack.mqtt_gateways, mqtt.topic_prefix))
        chown(path, user)
        return path

    def _tls_files(self, base: Path, user: Account | None) -> tuple[Path, Path] | None:
        """Copies of the certificate and key the broker's account can read (0600)."""
        cert, key = self.stack.mqtt_tls_certfile, self.stack.mqtt_tls_keyfile
        if not self.settings.mqtt.tls or cert is None or key is None:
            return None
        tls_dir = base / "tls"
        tls_dir.mkdir(mode=0o700, exist_ok=True)
        copies = (tls_dir / "server.crt", tls_dir / "server.key")
        for source, target in zip((cert, key), copies, strict=True):
            try:
                shutil.copyfile(source, target)
            except OSError as exc:
                raise StackError(f"mosquitto: cannot read {source}: {exc.strerror}") from exc
            target.chmod(0o600)
        chown(tls_dir, user, recursive=True)
        return copies

    def prepare(self) -> Launch:
        """Install mosquitto if needed, write the config (and password file)."""
        mqtt = self.settings.mqtt
        if self.stack.mqtt_gateways and not mqtt.username:
            raise StackError(
                "stack.mqtt_gateways needs mqtt.username/password (the bridge account): "
                "without it the broker would accept anonymous clients"
            )
        if mqtt.tls and not (self.stack.mqtt_tls_certfile and self.stack.mqtt_tls_keyfile):
            raise StackError(
                "mqtt.tls=true needs stack.mqtt_tls_certfile and stack.mqtt_tls_keyfile "
                "(the broker's certificate and key)"
            )
        binary = self._binary()
        user = self.account()
        self.dir.mkdir(parents=True, exist_ok=True)
        base = self.service_dir(user, create=True)
        data = base / "data"
        data.mkdir(parents=True, exist_ok=True)
        chown(data, user, recursive=True)
        password_file = self._password_file(base, user)
        acl_file = self._acl_file(base, user)
        tls = self._tls_files(base, user)
        conf = self.conf_path(base)
        conf.write_text(
            render_mosquitto_conf(self.host, self.port, data, password_file, acl_file, tls)
        )
        return Launch([binary, "-c", str(conf)], cwd=data, env=daemon_env(user), user=user)

    def ready(self, timeout_s: float) -> None:
        """A real publish/subscribe round trip with the configured credentials."""
        mqtt_roundtrip(self.settings.mqtt, self.host, self.port, timeout_s)
