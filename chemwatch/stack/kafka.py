"""Kafka 4.x in KRaft mode: one JVM that is both broker and controller.

There is no Debian package for Kafka, so the broker's jars are resolved from Maven
Central (``org.apache.kafka:kafka_2.13``) into ``<home>/kafka/libs`` once, and the broker
is started straight from that classpath with ``kafka.Kafka``, the class Kafka's own
``kafka-server-start.sh`` runs.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Coroutine, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from chemwatch.stack.config import KafkaScramUser, StackError
from chemwatch.stack.service import Endpoint, Launch, NotReady, Service
from chemwatch.stack.system import apt_install, find_executable, is_root, port_open, tail

# The log4j 2 release Kafka 4.1 itself depends on (log4j-api); core and the slf4j
# binding must be the same release.
LOG4J_VERSION = "2.24.3"
HEALTH_TOPIC = "_chemwatch_health"
MIN_JAVA = 17  # Kafka 4.x brokers need Java 17
MAVEN_TIMEOUT_S = 900.0
FORMAT_TIMEOUT_S = 120.0
SASL_SSL_LISTENER = "SASL_SSL"
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192

T = TypeVar("T")


def render_server_properties(
    host: str,
    port: int,
    controller_port: int,
    data_dir: Path,
    partitions: int = 6,
    replication_factor: int = 1,
    sasl_ssl_port: int | None = None,
    tls_pem: tuple[str, str] | None = None,
) -> str:
    """``server.properties`` of a single-node combined broker+controller.

    With ``sasl_ssl_port`` a second client listener speaks SASL_SSL (SCRAM-SHA-512) with
    the certificate chain and unencrypted PKCS#8 key of ``tls_pem`` (PEM texts, inlined:
    Kafka accepts an unencrypted PEM key only as a value, not as a file).
    """
    listeners = [f"PLAINTEXT://{host}:{port}", f"CONTROLLER://{host}:{controller_port}"]
    advertised = [f"PLAINTEXT://{host}:{port}"]
    protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
    secured: list[str] = []
    if sasl_ssl_port is not None:
        if tls_pem is None:
            raise ValueError("a SASL_SSL listener needs a certificate and key")
        listeners.append(f"{SASL_SSL_LISTENER}://{host}:{sasl_ssl_port}")
        advertised.append(f"{SASL_SSL_LISTENER}://{host}:{sasl_ssl_port}")
        protocols.append(f"{SASL_SSL_LISTENER}:SASL_SSL")
        prefix = f"listener.name.{SASL_SSL_LISTENER.lower()}"
        mechanism = SCRAM_MECHANISM.lower()
        secured = [
            f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
            f"{prefix}.sasl.enabled.mechanisms={SCRAM_MECHANISM}",
            f"{prefix}.{mechanism}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            f"{prefix}.ssl.keystore.type=PEM",
            f"{prefix}.ssl.keystore.certificate.chain=" + _properties_value(tls_pem[0]),
            f"{prefix}.ssl.keystore.key=" + _properties_value(tls_pem[1]),
            f"{prefix}.ssl.enabled.protocols=TLSv1.3,TLSv1.2",
        ]
    return "\n".join(
        [
            "# Written by `chemwatch stack up`; rewritten at every start.",
            "process.roles=broker,controller",
            "node.id=1",
            # A static voter set rather than controller.quorum.bootstrap.servers (the
            # dynamic quorum of `format --standalone`): the dynamic one records the
            # controller's endpoint in the metadata log, so a later port change in the
            # settings would leave the node unable to find its own quorum.
            f"controller.quorum.voters=1@{host}:{controller_port}",
            "listeners=" + ",".join(listeners),
            "advertised.listeners=" + ",".join(advertised),
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=" + ",".join(protocols),
            *secured,
            f"log.dirs={data_dir}",
            f"num.partitions={partitions}",
            f"default.replication.factor={replication_factor}",
            "auto.create.topics.enable=true",
            "delete.topic.enable=true",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "",
        ]
    )


def _properties_value(pem: str) -> str:
    """A multi-line PEM text as one Java properties value (backslash line continuations)."""
    return " \\\n".join(line.strip() for line in pem.strip().splitlines())


def scram_argument(user: KafkaScramUser, salt: bytes | None = None) -> str:
    """The ``--add-scram`` value for ``user``: salt and salted password, not the password.

    The salted password is what SCRAM stores (RFC 5802 ``Hi()``, i.e. PBKDF2-HMAC), so the
    clear password never reaches the broker's command line or files.
    """
    salt = os.urandom(32) if salt is None else salt
    salted = hashlib.pbkdf2_hmac(
        "sha512", user.password.get_secret_value().encode(), salt, SCRAM_ITERATIONS
    )
    encode = base64.b64encode
    return (
        f"{SCRAM_MECHANISM}=[name={user.username},iterations={SCRAM_ITERATIONS},"
        f"salt={encode(salt).decode()},saltedpassword={encode(salted).decode()}]"
    )


def render_pom(kafka_version: str, log4j_version: str = LOG4J_VERSION) -> str:
    """The Maven project that resolves the broker's jars."""
    template = resources.files("chemwatch.stack").joinpath("kafka-pom.xml").read_text()
    return template.replace("@KAFKA_VERSION@", kafka_version).replace(
        "@LOG4J_VERSION@", log4j_version
    )


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding (22 chars)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka's own generator skips ids starting with '-' (they read as CLI flags).
        if not text.startswith("-"):
            return text


def java_major(java: str) -> int:
    """The major version of the ``java`` binary (``java -version`` prints to stderr)."""
    done = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not match:
        return 0
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_..."
    return int(match.group(2) or 0) if major == 1 else major


def _run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine built by ``make()`` to completion, even under a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    # Called from async code (an async test fixture, say): a loop already runs in this
    # thread, so run ours in another.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


async def _roundtrip(bootstrap: str, timeout_s: float) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    payload = uuid.uuid4().hex.encode()
    request_ms = max(1000, int(timeout_s * 1000))
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="chemwatch-stack-health",
        acks="all",
        request_timeout_ms=request_ms,
    )
    await producer.start()
    try:
        # Partition 0 explicitly: the topic is auto-created with num.partitions and we
        # need to know where to read the record back.
        meta = await producer.send_and_wait(HEALTH_TOPIC, payload, partition=0)
    finally:
        await producer.stop()
    partition = TopicPartition(HEALTH_TOPIC, meta.partition)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="chemwatch-stack-health",
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=request_ms,
    )
    await consumer.start()
    try:
        consumer.assign([partition])
        consumer.seek(partition, meta.offset)
        record = await consumer.getone()
    finally:
        await consumer.stop()
    if record.value != payload:
        raise NotReady(f"read back a different record at offset {meta.offset}")


def kafka_roundtrip(bootstrap: str, timeout_s: float) -> None:
    """Produce one record to ``_chemwatch_health`` and consume it back within ``timeout_s``."""
    from aiokafka.errors import KafkaError

    async def bounded() -> None:
        await asyncio.wait_for(_roundtrip(bootstrap, timeout_s), timeout_s)

    try:
        _run_sync(bounded)
    except TimeoutError as exc:
        raise NotReady(f"no produce/consume round trip within {timeout_s:.0f} s") from exc
    except KafkaError as exc:
        raise NotReady(f"{type(exc).__name__}: {exc}") from exc


class Kafka(Service):
    """Kafka broker+controller from jars resolved with Maven."""

    name: ClassVar[str] = "kafka"
    stop_timeout_s: ClassVar[float] = 60.0

    def _bootstrap(self) -> tuple[str, int]:
        first = self.settings.kafka.bootstrap_servers.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        if not host or not port.isdigit():
            raise StackError(f"kafka.bootstrap_servers: cannot read host:port from {first!r}")
        return ("127.0.0.1" if host == "localhost" else host), int(port)

    @property
    def host(self) -> str:
        """Listen address, from the first bootstrap server."""
        return self._bootstrap()[0]

    @property
    def port(self) -> int:
        """Client (PLAINTEXT) port, from the first bootstrap server."""
        return self._bootstrap()[1]

    @property
    def libs_dir(self) -> Path:
        """The jar cache."""
        return self.dir / "libs"

    @property
    def config_dir(self) -> Path:
        """server.properties, log4j2.properties and the pom."""
        return self.dir / "config"

    @property
    def data_dir(self) -> Path:
        """log.dirs (also the KRaft metadata log)."""
        return self.dir / "data"

    @property
    def server_properties(self) -> Path:
        """Path of the broker's config file."""
        return self.config_dir / "server.properties"

    def endpoints(self) -> list[Endpoint]:
        """Client listener(s) and controller listener."""
        found = [
            Endpoint(self.host, self.port, "PLAINTEXT"),
            Endpoint(self.host, self.stack.kafka_controller_port, "CONTROLLER"),
        ]
        if self.stack.kafka_sasl_ssl_port is not None:
            found.append(Endpoint(self.host, self.stack.kafka_sasl_ssl_port, SASL_SSL_LISTENER))
        return found

    def address(self) -> str:
        """``kafka://host:port`` (the bootstrap server)."""
        return f"kafka://{self.host}:{self.port}"

    def matches(self, argv: Sequence[str]) -> bool:
        """A JVM running ``kafka.Kafka`` with our server.properties."""
        return "kafka.Kafka" in argv and str(self.server_properties) in argv

    def _tool(self, command: str, package: str) -> str:
        found = find_executable(command)
        if found is None:
            if not is_root():
                raise StackError(
                    f"{command} is not installed: run `sudo apt-get install -y {package}`"
                )
            self.note(f"installing {package} with apt-get ...")
            apt_install([package], self.dir / "apt.log")
            found = find_executable(command)
            if found is None:
                raise StackError(f"kafka: apt-get installed {package} but no {command} found")
        return found

    def _java(self) -> str:
        java = self._tool("java", "openjdk-17-jre-headless")
        major = java_major(java)
        if major < MIN_JAVA:
            raise StackError(
                f"kafka: {java} is Java {major or '?'}; Kafka "
                f"{self.stack.kafka_version} needs Java {MIN_JAVA} or newer "
                "(apt-get install -y openjdk-17-jre-headless)"
            )
        return java

    def _classpath(self) -> str:
        # The JVM expands "dir/*" to every jar in dir; no shell is involved.
        return str(self.libs_dir / "*")

    def _ensure_libs(self) -> None:
        version = self.stack.kafka_version
        if (self.libs_dir / f"kafka_2.13-{version}.jar").is_file():
            return
        mvn = self._tool("mvn", "maven")
        pom = self.config_dir / "pom.xml"
        pom.write_text(render_pom(version))
        staging = self.dir / "libs.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        log = self.dir / "maven.log"
        self.note(f"downloading Kafka {version} jars with Maven (first start only) ...")
        argv = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        with log.open("ab") as out:
            out.write(f"$ {' '.join(argv)}\n".encode())
            out.flush()
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.config_dir,
                    timeout=MAVEN_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise StackError(
                    f"kafka: Maven did not finish within {MAVEN_TIMEOUT_S:.0f} s; see {log}"
                ) from exc
        if done.returncode != 0 or not (staging / f"kafka_2.13-{version}.jar").is_file():
            raise StackError(
                f"kafka: resolving org.apache.kafka:kafka_2.13:{version} with Maven failed "
                f"(exit {done.returncode}); log {log}:\n" + tail(log)
            )
        # Swap in the complete set only, so an interrupted download never passes for
        # a cached one, and jars of another version never mix into the classpath.
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        staging.rename(self.libs_dir)

    def _format(self, java: str) -> None:
        if (self.data_dir / "meta.properties").is_file():
            if self.stack.kafka_scram_users:
                self.note(
                    "kafka: storage already formatted; SCRAM accounts are created "
                    "only at the first start of a home"
                )
            return
        self.note(f"formatting Kafka storage in {self.data_dir} ...")
        tool = [
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.server_properties),
        ]
        tool += [
            arg for user in self.stack.kafka_scram_users for arg in ("-S", scram_argument(user))
        ]
        # The tool's arguments go in a Java argument file (mode 0600, deleted after use),
        # not on the command line: a SCRAM salted password is as good as the password.
        args_file = self.config_dir / "format.args"
        args_file.unlink(missing_ok=True)
        args_file.touch(mode=0o600)
        args_file.write_text("".join(f'"{arg}"\n' for arg in tool))
        argv = [
            java,
            "-cp",
            self._classpath(),
            f"-Dlog4j2.configurationFile={self.config_dir / 'log4j2.properties'}",
            f"@{args_file}",
        ]
        try:
            self._run_format(argv)
        finally:
            args_file.unlink(missing_ok=True)

    def _run_format(self, argv: list[str]) -> None:
        with self.log_path.open("ab") as out:
            out.write(f"\n=== chemwatch stack: {' '.join(argv)}\n".encode())
            out.flush()
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=FORMAT_TIMEOUT_S,
                check=False,
            )
        if done.returncode != 0:
            raise StackError(
                f"kafka: formatting storage failed (exit {done.returncode}); "
                f"log {self.log_path}:\n" + tail(self.log_path)
            )

    def prepare(self) -> Launch:
        """Resolve jars (once), write configs, format storage (once); return the JVM."""
        kafka = self.settings.kafka
        if kafka.security_protocol != "PLAINTEXT":
            raise StackError(
                "kafka: kafka.bootstrap_servers of the stack's config is its PLAINTEXT "
                f"listener (kafka.security_protocol is {kafka.security_protocol}); add a "
                "secured one with stack.kafka_sasl_ssl_port"
            )
        tls_pem = self._tls_pem()
        java = self._java()
        for directory in (self.dir, self.config_dir, self.data_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._ensure_libs()
        log4j = self.config_dir / "log4j2.properties"
        log4j.write_text(
            resources.files("chemwatch.stack").joinpath("kafka-log4j2.properties").read_text()
        )
        self.server_properties.write_text(
            render_server_properties(
                self.host,
                self.port,
                self.stack.kafka_controller_port,
                self.data_dir,
                partitions=kafka.partitions,
                replication_factor=kafka.replication_factor,
                sasl_ssl_port=self.stack.kafka_sasl_ssl_port,
                tls_pem=tls_pem,
            )
        )
        self.server_properties.chmod(0o600)  # may hold the TLS private key
        self._format(java)
        return Launch(
            [
                java,
                f"-Xms{self.stack.kafka_heap_min}",
                f"-Xmx{self.stack.kafka_heap_max}",
                # The GC flags of Kafka's kafka-run-class.sh.
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:InitiatingHeapOccupancyPercent=35",
                "-XX:+ExplicitGCInvokesConcurrent",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j}",
                f"-Dkafka.logs.dir={self.dir}",
                "-cp",
                self._classpath(),
                "kafka.Kafka",
                str(self.server_properties),
            ],
            cwd=self.dir,
        )

    def _tls_pem(self) -> tuple[str, str] | None:
        """Certificate chain and key of the SASL_SSL listener, checked; None without one."""
        stack = self.stack
        if stack.kafka_sasl_ssl_port is None:
            return None
        if stack.kafka_tls_certfile is None or stack.kafka_tls_keyfile is None:
            raise StackError(
                "kafka: stack.kafka_sasl_ssl_port needs stack.kafka_tls_certfile and "
                "stack.kafka_tls_keyfile (PEM)"
            )
        if not stack.kafka_scram_users:
            raise StackError(
                "kafka: stack.kafka_sasl_ssl_port needs at least one stack.kafka_scram_users "
                "account (nobody could connect otherwise)"
            )
        if stack.kafka_sasl_ssl_port in (self.port, stack.kafka_controller_port):
            raise StackError(
                f"kafka: stack.kafka_sasl_ssl_port {stack.kafka_sasl_ssl_port} is already "
                "the PLAINTEXT or controller port"
            )
        texts = []
        for key, path in (
            ("stack.kafka_tls_certfile", stack.kafka_tls_certfile),
            ("stack.kafka_tls_keyfile", stack.kafka_tls_keyfile),
        ):
            try:
                texts.append(path.read_text())
            except OSError as exc:
                raise StackError(f"kafka: {key}: cannot read {path}: {exc.strerror}") from exc
        cert, key = texts
        if "-----BEGIN CERTIFICATE-----" not in cert:
            raise StackError(
                f"kafka: stack.kafka_tls_certfile: no PEM certificate in {stack.kafka_tls_certfile}"
            )
        if "-----BEGIN PRIVATE KEY-----" not in key:
            raise StackError(
                "kafka: stack.kafka_tls_keyfile: Kafka needs an unencrypted PKCS#8 PEM key "
                "(-----BEGIN PRIVATE KEY-----); convert with `openssl pkcs8 -topk8 -nocrypt`"
            )
        return cert, key

    def ready(self, timeout_s: float) -> None:
        """A produce and consume round trip through the broker."""
        if not port_open(self.host, self.port):
            raise NotReady(f"nothing listens on {self.host}:{self.port} yet")
        kafka_roundtrip(f"{self.host}:{self.port}", timeout_s)
