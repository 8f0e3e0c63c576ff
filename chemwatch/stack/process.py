"""Daemon processes: start detached with a log and a PID file, check, stop.

A PID file holds one decimal PID. Because PIDs are recycled, nothing trusts a PID file
alone: callers pass a ``matches`` predicate over the process's command line, and a PID
whose command line does not match counts as "not ours".
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from chemwatch.stack.system import Account

Matcher = Callable[[Sequence[str]], bool]

# A log bigger than this is moved aside to ``<log>.1`` at the next start, so a dev box
# running for weeks does not fill its disk with broker chatter.
LOG_ROTATE_BYTES = 64 * 1024 * 1024

# Popen objects of daemons this Python process started. Keeping them referenced stops
# Popen.__del__ from warning "subprocess is still running" while the daemon lives on,
# and lets is_alive()/stop() reap them when this process is their parent.
_children: dict[int, subprocess.Popen[bytes]] = {}


def read_pid(pid_path: Path) -> int | None:
    """The PID stored in ``pid_path``; None when missing, empty or not a positive integer."""
    try:
        text = pid_path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if pid > 0 else None


def write_pid(pid_path: Path, pid: int) -> None:
    """Store ``pid`` atomically, so a reader never sees a half-written file."""
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_path.with_name(pid_path.name + ".tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    os.replace(tmp, pid_path)


def remove_pid(pid_path: Path) -> None:
    """Delete the PID file if present."""
    with contextlib.suppress(FileNotFoundError):
        pid_path.unlink()


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def is_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str] | None:
    """The argv of ``pid`` as the kernel reports it; None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def running_pid(pid_path: Path, matches: Matcher) -> int | None:
    """The PID from ``pid_path`` if that process is alive and its command line matches."""
    pid = read_pid(pid_path)
    if pid is None or not is_alive(pid):
        return None
    argv = cmdline(pid)
    if argv is None or not matches(argv):
        return None
    return pid


def _rotate(log_path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if log_path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))


def start_daemon(
    argv: Sequence[str],
    *,
    log_path: Path,
    pid_path: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: Account | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` detached (own session, stdin from /dev/null, output appended to
    ``log_path``), write its PID to ``pid_path`` and return the Popen handle.

    With ``user`` (root only) the process runs as that account from its first
    instruction, so the PID we record is the daemon's own, not a wrapper's.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _rotate(log_path)
    with log_path.open("ab") as log:
        log.write(f"\n=== chemwatch stack: starting {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=[] if user else None,
        )
    _children[proc.pid] = proc
    write_pid(pid_path, proc.pid)
    return proc


@dataclass(frozen=True)
class StopResult:
    """What :func:`stop` did: ``stopped`` (pid), ``not running``, ``stale pid file``."""

    outcome: str
    pid: int | None = None
    killed: bool = False


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``pid`` to exit; True when it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return not is_alive(pid)


def stop(
    pid_path: Path,
    matches: Matcher,
    *,
    sig: signal.Signals = signal.SIGTERM,
    timeout_s: float = 30.0,
) -> StopResult:
    """Stop the process named by ``pid_path``: ``sig``, then SIGKILL after ``timeout_s``.

    A PID whose command line does not satisfy ``matches`` is never signalled (the PID
    was recycled by something else); its PID file is removed as stale. The PID file is
    removed once the process is gone. Harmless when nothing runs.
    """
    pid = read_pid(pid_path)
    if pid is None:
        remove_pid(pid_path)
        return StopResult("not running")
    if not is_alive(pid):
        remove_pid(pid_path)
        return StopResult("not running", pid)
    argv = cmdline(pid)
    if argv is None or not matches(argv):
        remove_pid(pid_path)
        return StopResult("stale pid file", pid)
    killed = False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not wait_gone(pid, timeout_s):
        killed = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not wait_gone(pid, 10.0):
            raise OSError(errno.EBUSY, f"pid {pid} survived SIGKILL", str(pid_path))
    remove_pid(pid_path)
    return StopResult("stopped", pid, killed)
