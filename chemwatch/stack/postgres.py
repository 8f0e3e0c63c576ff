"""PostgreSQL: a private cluster (own data directory, port and socket directory).

PostgreSQL refuses to run as root, so under root ``initdb`` and ``postgres`` run as the
``postgres`` account of the Debian package. They are started with the account switched
in the child itself rather than through ``runuser``: the PID we record is then the
postmaster's own, and signals reach it without a wrapper in between.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from chemwatch.stack.config import StackError
from chemwatch.stack.service import Endpoint, Launch, NotReady, Service, daemon_env
from chemwatch.stack.system import Account, account, apt_install, chown, is_root, tail

SUPERUSER = "postgres"
CONF_NAME = "chemwatch.conf"
INCLUDE_LINE = f"include_if_exists = '{CONF_NAME}'"
# Unix socket paths are limited to 107 bytes; leave room for "/.s.PGSQL.NNNNN".
MAX_SOCKET_DIR = 90


def render_postgres_conf(host: str, port: int, socket_dir: Path) -> str:
    """Settings we own, included from postgresql.conf and rewritten at every start."""
    return "\n".join(
        [
            "# Written by `chemwatch stack up`; rewritten at every start.",
            f"listen_addresses = '{host}'",
            f"port = {port}",
            f"unix_socket_directories = '{socket_dir}'",
            "max_connections = 200",
            "shared_buffers = 256MB",
            # Durability stays honest even on a dev box: tests that pass here must not
            # depend on a database that may lose committed rows.
            "fsync = on",
            "synchronous_commit = on",
            "full_page_writes = on",
            # At 50k readings/s the default 1 GB of WAL forced a checkpoint every ~60 s
            # (30 Nov soak), and after each one every first change to a page logs the
            # whole 8 kB page again. Fewer checkpoints and compressed page images cut
            # the WAL written; crash recovery replays at most this much more.
            "max_wal_size = 4GB",
            "checkpoint_timeout = 10min",
            "wal_compression = lz4",
            "password_encryption = 'scram-sha-256'",
            # Commit time of each transaction (pg_xact_commit_timestamp): `chemwatch bench
            # e2e` measures publish -> row committed with it. Takes effect at a restart.
            "track_commit_timestamp = on",
            # stderr is our log file; the collector would split logs into a second place.
            "logging_collector = off",
            "log_line_prefix = '%m [%p] %q%u@%d '",
            "log_timezone = 'UTC'",
            "timezone = 'UTC'",
            "",
        ]
    )


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<N>/bin`` holding a server, if any."""
    root = Path("/usr/lib/postgresql")
    found: list[tuple[int, Path]] = []
    if root.is_dir():
        for child in root.iterdir():
            if child.name.isdigit() and (child / "bin" / "postgres").is_file():
                found.append((int(child.name), child / "bin"))
    return max(found)[1] if found else None


class Postgres(Service):
    """PostgreSQL server with the chemwatch role and database."""

    name: ClassVar[str] = "postgres"
    # SIGINT is "fast shutdown": clients are disconnected. SIGTERM ("smart") would wait
    # for every connected client, for example a service that stays connected.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT
    stop_timeout_s: ClassVar[float] = 60.0

    @property
    def host(self) -> str:
        """Listen address from DatabaseSettings, ``localhost`` pinned to IPv4."""
        host = self.settings.database.host
        return "127.0.0.1" if host == "localhost" else host

    @property
    def port(self) -> int:
        """Listen port, from DatabaseSettings."""
        return self.settings.database.port

    def account(self) -> Account | None:
        """``postgres`` under root (the server refuses root), else ourselves."""
        if not is_root():
            return None
        user = account(SUPERUSER)
        if user is None:
            raise StackError("postgres: the `postgres` account is missing; reinstall postgresql")
        return user

    def data_dir(self, base: Path | None = None) -> Path:
        """The cluster's data directory."""
        return (base or self.service_dir(None)) / "data"

    def socket_dir(self, base: Path | None = None) -> Path:
        """Directory of the Unix socket (private: only the server's account and root)."""
        candidate = (base or self.service_dir(None)) / "run"
        if len(str(candidate)) <= MAX_SOCKET_DIR:
            return candidate
        digest = hashlib.sha256(str(candidate).encode()).hexdigest()[:12]
        return Path("/tmp") / f"chemwatch-pg-{digest}"  # noqa: S108 - path too long otherwise

    def endpoints(self) -> list[Endpoint]:
        """The SQL listener."""
        return [Endpoint(self.host, self.port, "SQL")]

    def address(self) -> str:
        """``postgresql://user@host:port/dbname``."""
        db = self.settings.database
        return f"postgresql://{db.user}@{self.host}:{self.port}/{db.dbname}"

    def matches(self, argv: Sequence[str]) -> bool:
        """A postmaster (``postgres -D <our data dir>``)."""
        if not argv or os.path.basename(argv[0]) not in ("postgres", "postmaster"):
            return False
        data = str(self.data_dir())
        return any(a == "-D" and b == data for a, b in itertools.pairwise(argv))

    def _bindir(self) -> Path:
        bindir = find_bindir()
        if bindir is None:
            if not is_root():
                raise StackError(
                    "PostgreSQL is not installed: run `sudo apt-get install -y postgresql`"
                )
            self.note("installing postgresql with apt-get ...")
            apt_install(["postgresql"], self.dir / "apt.log")
            bindir = find_bindir()
            if bindir is None:
                raise StackError("postgres: apt-get installed postgresql but no server found")
        return bindir

    def _initdb(self, bindir: Path, data: Path, user: Account | None) -> None:
        self.note(f"initialising a PostgreSQL cluster in {data} ...")
        argv = [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            # Local socket: trust, but the socket directory is 0700, so only the server's
            # account (and root) can reach it. TCP: passwords, scram only.
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"\n=== chemwatch stack: {' '.join(argv)}\n".encode())
            log.flush()
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data,
                env=daemon_env(user),
                check=False,
                user=user.uid if user else None,
                group=user.gid if user else None,
                extra_groups=[] if user else None,
            )
        if done.returncode != 0:
            raise StackError(
                f"postgres: initdb failed (exit {done.returncode}); log {self.log_path}:\n"
                + tail(self.log_path)
            )

    def prepare(self) -> Launch:
        """Install if needed, ``initdb`` once, write our settings; return the postmaster."""
        bindir = self._bindir()
        user = self.account()
        self.dir.mkdir(parents=True, exist_ok=True)
        base = self.service_dir(user, create=True)
        data = self.data_dir(base)
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        chown(data, user)
        if not (data / "PG_VERSION").exists():
            self._initdb(bindir, data, user)
        sockets = self.socket_dir(base)
        sockets.mkdir(mode=0o700, parents=True, exist_ok=True)
        chown(sockets, user)
        (data / CONF_NAME).write_text(render_postgres_conf(self.host, self.port, sockets))
        main_conf = data / "postgresql.conf"
        if INCLUDE_LINE not in main_conf.read_text():
            with main_conf.open("a") as handle:
                handle.write(f"\n# chemwatch stack\n{INCLUDE_LINE}\n")
        chown(data / CONF_NAME, user)
        return Launch(
            [str(bindir / "postgres"), "-D", str(data)],
            cwd=data,
            env=daemon_env(user),
            user=user,
        )

    def _superuser_conninfo(self) -> str:
        return (
            f"host={self.socket_dir()} port={self.port} user={SUPERUSER} dbname=postgres "
            "connect_timeout=3"
        )

    def ready(self, timeout_s: float) -> None:
        """The server answers ``SELECT 1`` over its Unix socket."""
        import psycopg

        try:
            with psycopg.connect(self._superuser_conninfo(), autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise NotReady(_first_line(exc)) from exc

    def bootstrap(self) -> None:
        """Create (or update the password of) the configured role, and its database."""
        import psycopg
        from psycopg import sql

        db = self.settings.database
        password = sql.Literal(db.password.get_secret_value())
        role = sql.Identifier(db.user)
        with psycopg.connect(self._superuser_conninfo(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [db.user]).fetchone()
            verb = "ALTER" if exists else "CREATE"
            # The superuser needs no CREATEDB, and granting it would be a no-op anyway.
            grants = " LOGIN" if db.user == SUPERUSER else " LOGIN CREATEDB"
            statement = sql.SQL(verb + " ROLE {}" + grants + " PASSWORD {}")
            conn.execute(statement.format(role, password))
            has_db = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [db.dbname]
            ).fetchone()
            if not has_db:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db.dbname), role)
                )

    def check(self) -> None:
        """``SELECT 1`` over TCP with the configured user and password, as clients do."""
        import psycopg

        conninfo = self.settings.database.conninfo() + " connect_timeout=5"
        try:
            with psycopg.connect(conninfo) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise NotReady(_first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # libpq messages repeat per address tried; the first line says enough.
    return re.split(r"\n", text, maxsplit=1)[0] if text else type(exc).__name__
