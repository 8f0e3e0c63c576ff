"""Host facts and chores: Debian packages, service accounts, ports, log tails."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chemwatch.stack.config import StackError

_apt_updated = False


def is_root() -> bool:
    """True when running as root, where the stack may install packages and switch users."""
    return os.geteuid() == 0


@dataclass(frozen=True)
class Account:
    """A Unix account a daemon runs as (``postgres``, ``mosquitto``)."""

    name: str
    uid: int
    gid: int
    home: str


def account(name: str) -> Account | None:
    """The account ``name``, or None when it does not exist."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def apt_install(packages: Sequence[str], log: Path) -> None:
    """``apt-get install -y`` the packages (running ``apt-get update`` once per process).

    Output goes to ``log``; on failure the error quotes its tail. Never starts or stops
    system services itself: whatever the package's maintainer scripts do is theirs.
    """
    global _apt_updated
    if not is_root():
        raise StackError(
            f"missing {' '.join(packages)}: run `sudo apt-get install -y {' '.join(packages)}`"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        steps: list[list[str]] = []
        if not _apt_updated:
            steps.append(["apt-get", "update"])
        steps.append(["apt-get", "install", "-y", "--no-install-recommends", *packages])
        for argv in steps:
            out.write(f"$ {' '.join(argv)}\n".encode())
            out.flush()
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                check=False,
            )
            if done.returncode != 0:
                raise StackError(
                    f"`{' '.join(argv)}` failed (exit {done.returncode}); see {log}:\n" + tail(log)
                )
            if argv[1] == "update":
                _apt_updated = True


def find_executable(name: str, extra_dirs: Iterable[str] = ("/usr/sbin", "/sbin")) -> str | None:
    """``name`` on PATH or in ``extra_dirs`` (Debian puts daemons in /usr/sbin, which is
    not on an ordinary user's PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def can_use_dir_as(user: Account, path: Path) -> bool:
    """Whether ``user`` can reach and write ``path`` (every parent must be searchable)."""
    if os.geteuid() == user.uid:
        return os.access(path, os.W_OK | os.X_OK)
    # os.access answers for the real uid (root), so ask a process running as the user.
    done = subprocess.run(
        ["test", "-w", str(path), "-a", "-x", str(path)],
        user=user.uid,
        group=user.gid,
        extra_groups=[],
        cwd="/",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def chown(path: Path, user: Account | None, recursive: bool = False) -> None:
    """Give ``path`` to ``user`` (no-op for None or when it already is theirs)."""
    if user is None or not is_root():
        return
    paths = [path]
    if recursive:
        paths.extend(path.rglob("*"))
    for item in paths:
        st = item.lstat()
        if st.st_uid != user.uid or st.st_gid != user.gid:
            os.lchown(item, user.uid, user.gid)


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on (or holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR ignores TIME_WAIT leftovers of a process that just stopped,
        # so only a live socket makes bind fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a TCP connect to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_owner(port: int) -> tuple[int, list[str]] | None:
    """PID and argv of the process listening on TCP ``port``, when it can be found."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # fields: sl, local address, remote address, state (0A = LISTEN), ..., inode
            if len(fields) <= 9 or fields[3] != "0A":
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in targets:
                    raw = (proc / "cmdline").read_bytes()
                    argv = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
                    return int(proc.name), argv
        except OSError:
            continue
    return None


def port_holder(port: int) -> str:
    """``pid N (command line)`` of whoever listens on ``port``, or ``another process``."""
    owner = port_owner(port)
    if owner is None:
        return "another process"
    return f"pid {owner[0]} ({' '.join(owner[1])[:120]})"


def describe_port_conflict(host: str, port: int, service: str) -> str:
    """A message naming the port ``service`` needs and who holds it."""
    return (
        f"{service}: port {host}:{port} is already in use by {port_holder(port)}, which is "
        "not ours; stop it or choose another port in the config file"
    )


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of ``path`` (indented), or a note that it is empty/missing."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"    ({path} does not exist)"
    chosen = text.splitlines()[-lines:]
    if not chosen:
        return f"    ({path} is empty)"
    return "\n".join("    " + line for line in chosen)


def display_path(path: Path) -> str:
    """``path`` relative to the current directory when under it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
