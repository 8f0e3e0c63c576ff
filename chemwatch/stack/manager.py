"""``up``, ``down`` and ``status`` of the whole stack, and what they print."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from chemwatch.stack import process
from chemwatch.stack.config import SERVICE_NAMES, StackError, StackSettings, load_stack_settings
from chemwatch.stack.kafka import Kafka
from chemwatch.stack.mosquitto import Mosquitto
from chemwatch.stack.postgres import Postgres
from chemwatch.stack.service import NotReady, Service
from chemwatch.stack.system import (
    describe_port_conflict,
    display_path,
    port_holder,
    port_in_use,
    port_owner,
    tail,
)
from common.settings import BaseProcessSettings

SERVICE_TYPES: dict[str, type[Service]] = {
    "mosquitto": Mosquitto,
    "postgres": Postgres,
    "kafka": Kafka,
}
LOCK_TIMEOUT_S = 900.0
LOG_TAIL_LINES = 20
# One probe may not take longer than this, so progress keeps moving and a hung probe
# does not eat the whole start timeout.
PROBE_TIMEOUT_S = {"mosquitto": 5.0, "postgres": 5.0, "kafka": 15.0}
STATUS_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ServiceReport:
    """The outcome for one service of ``up``, ``down`` or ``status``."""

    name: str
    state: str
    address: str
    pid: int | None = None
    log_path: Path | None = None
    detail: str = ""
    ok: bool = True

    def line(self) -> str:
        """The one line printed for this service."""
        parts = [f"{self.name:<10} {self.state:<16} {self.address}"]
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        extra = [self.detail] if self.detail else []
        if self.log_path is not None:
            extra.append(f"log: {display_path(self.log_path)}")
        if extra:
            parts.append(f"({', '.join(extra)})")
        return "  ".join(parts)


def select_services(only: Iterable[str] | None = None) -> list[str]:
    """Validated service names in start order (all of them when ``only`` is empty)."""
    if not only:
        return list(SERVICE_NAMES)
    wanted = {name.strip() for name in only if name.strip()}
    unknown = sorted(wanted - set(SERVICE_NAMES))
    if unknown:
        raise StackError(
            f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICE_NAMES)}"
        )
    return [name for name in SERVICE_NAMES if name in wanted]


def _resolve(
    stack: StackSettings | None, settings: BaseProcessSettings | None
) -> tuple[StackSettings, BaseProcessSettings]:
    if stack is None or settings is None:
        loaded_stack, loaded = load_stack_settings()
        return stack or loaded_stack, settings or loaded
    return stack, settings


def _services(
    stack: StackSettings, settings: BaseProcessSettings, names: list[str], err: TextIO
) -> list[Service]:
    def note(message: str) -> None:
        print(message, file=err, flush=True)

    return [SERVICE_TYPES[name](stack, settings, note) for name in names]


@contextlib.contextmanager
def _locked(home: Path, err: TextIO) -> Iterator[None]:
    """Serialise ``up``/``down`` on one home: two of them would race for the same ports."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("a") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"another `chemwatch stack` command holds {home / '.lock'}"
                    ) from None
                if not told:
                    print(
                        f"waiting for another `chemwatch stack` command on {home} ...",
                        file=err,
                        flush=True,
                    )
                    told = True
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Progress:
    """``waiting for kafka ... 12 s`` on stderr: rewritten in place on a terminal, a
    line every 10 s otherwise (CI logs)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_line_at = -1e9
        self.dirty = False

    def update(self, name: str, elapsed: float, reason: str) -> None:
        if self.tty:
            text = f"waiting for {name} ... {elapsed:.0f} s"
            self.stream.write("\r" + text.ljust(40))
            self.stream.flush()
            self.dirty = True
        elif elapsed >= 2.0 and elapsed - self.last_line_at >= 10.0:
            self.stream.write(f"waiting for {name} ... {elapsed:.0f} s ({reason})\n")
            self.stream.flush()
            self.last_line_at = elapsed

    def clear(self) -> None:
        if self.dirty:
            self.stream.write("\r" + " " * 40 + "\r")
            self.stream.flush()
            self.dirty = False
        self.last_line_at = -1e9


def _failure(service: Service, summary: str) -> str:
    return (
        f"{service.name}: {summary}\n"
        f"  log: {service.log_path}, last {LOG_TAIL_LINES} lines:\n"
        + tail(service.log_path, LOG_TAIL_LINES)
    )


def _wait_healthy(
    service: Service,
    pid: int,
    child: subprocess.Popen[bytes] | None,
    progress: _Progress,
) -> None:
    """Probe until ready (then bootstrap and check) or until the start timeout."""
    started = time.monotonic()
    deadline = started + service.start_timeout_s
    reason = "not probed yet"
    try:
        while True:
            exit_code = child.poll() if child is not None else None
            if exit_code is not None or not process.is_alive(pid):
                code = f" with code {exit_code}" if exit_code is not None else ""
                raise StackError(_failure(service, f"exited during start-up{code} (pid {pid})"))
            remaining = deadline - time.monotonic()
            try:
                service.ready(max(1.0, min(PROBE_TIMEOUT_S[service.name], remaining)))
                break
            except NotReady as exc:
                reason = str(exc)
            if time.monotonic() >= deadline:
                summary = (
                    f"not healthy within {service.start_timeout_s:.0f} s (last check: {reason})"
                )
                if child is None:
                    # Ours but started earlier, possibly with other ports or credentials.
                    summary += (
                        f"; it was already running as pid {pid}: if the settings changed, "
                        "run `chemwatch stack down` first"
                    )
                raise StackError(_failure(service, summary))
            progress.update(service.name, time.monotonic() - started, reason)
            time.sleep(0.5)
        service.bootstrap()
        try:
            service.check()
        except NotReady as exc:
            summary = f"started, but a client's check failed: {exc}"
            raise StackError(_failure(service, summary)) from exc
    finally:
        progress.clear()


def _find_orphan(service: Service) -> int | None:
    """PID of our daemon running without its PID file (deleted by hand), if any."""
    for endpoint in service.endpoints():
        owner = port_owner(endpoint.port)
        if owner is not None and service.matches(owner[1]):
            return owner[0]
    return None


def _adopt_orphan(service: Service) -> int | None:
    """Record an orphan found by :func:`_find_orphan` again, so ``down`` can stop it."""
    pid = _find_orphan(service)
    if pid is not None:
        process.write_pid(service.pid_path, pid)
    return pid


def up(
    stack: StackSettings | None = None,
    settings: BaseProcessSettings | None = None,
    only: Iterable[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> list[ServiceReport]:
    """Start every selected service that is not running and wait until all are healthy.

    Idempotent: a service already running from this home is left alone (reported
    ``already running``). Prints one line per service to ``out`` (default stdout) and
    progress to ``err`` (default stderr). Raises :class:`StackError` naming each
    service that failed, its log and the log's last lines; services that did come up
    keep running. ``stack``/``settings`` default to :func:`load_stack_settings`.
    """
    stack, settings = _resolve(stack, settings)
    out = out or sys.stdout
    err = err or sys.stderr
    names = select_services(only)
    services = _services(stack, settings, names, err)
    reports: list[ServiceReport] = []
    failures: list[str] = []
    progress = _Progress(err)
    with _locked(stack.home, err):
        pending: list[tuple[Service, int, subprocess.Popen[bytes] | None]] = []
        for service in services:
            pid = process.running_pid(service.pid_path, service.matches) or _adopt_orphan(service)
            if pid is not None:
                pending.append((service, pid, None))
                continue
            process.remove_pid(service.pid_path)  # dead, or a recycled PID of something else
            try:
                for endpoint in service.endpoints():
                    if port_in_use(endpoint.host, endpoint.port):
                        raise StackError(
                            describe_port_conflict(endpoint.host, endpoint.port, service.name)
                        )
                launch = service.prepare()
                spawned = process.start_daemon(
                    launch.argv,
                    log_path=service.log_path,
                    pid_path=service.pid_path,
                    cwd=launch.cwd,
                    env=launch.env,
                    user=launch.user,
                )
            except (StackError, OSError) as exc:
                message = str(exc) if isinstance(exc, StackError) else f"{service.name}: {exc}"
                failures.append(message)
                continue
            pending.append((service, spawned.pid, spawned))

        for service, pid, child in pending:
            try:
                _wait_healthy(service, pid, child, progress)
            except StackError as exc:
                failures.append(str(exc))
                if child is not None:
                    # Ours and half-started: leave nothing behind that the next `up`
                    # would mistake for a running service.
                    process.stop(
                        service.pid_path, service.matches, sig=service.stop_signal, timeout_s=10.0
                    )
                continue
            if child is None:
                report = ServiceReport(
                    service.name, "already running", service.address(), pid, service.log_path
                )
            else:
                report = ServiceReport(service.name, "up", service.address(), pid, service.log_path)
            reports.append(report)
            print(report.line(), file=out, flush=True)
    if failures:
        raise StackError("\n".join(failures))
    return reports


def down(
    stack: StackSettings | None = None,
    settings: BaseProcessSettings | None = None,
    only: Iterable[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> list[ServiceReport]:
    """Stop the selected services started from this home (by their PID files).

    A PID file whose process is not that service (a recycled PID) is removed without
    signalling anything. Harmless when nothing runs. Prints one line per service.
    """
    stack, settings = _resolve(stack, settings)
    out = out or sys.stdout
    err = err or sys.stderr
    services = _services(stack, settings, select_services(only), err)
    reports: list[ServiceReport] = []
    failures: list[str] = []
    with _locked(stack.home, err):
        for service in reversed(services):
            try:
                result = process.stop(
                    service.pid_path,
                    service.matches,
                    sig=service.stop_signal,
                    timeout_s=service.stop_timeout_s,
                )
            except OSError as exc:
                failures.append(f"{service.name}: could not stop: {exc}")
                continue
            if result.outcome == "stopped":
                detail = "killed after timeout" if result.killed else ""
                report = ServiceReport(
                    service.name, "stopped", service.address(), result.pid, detail=detail
                )
            elif result.outcome == "stale pid file":
                report = ServiceReport(
                    service.name,
                    "not running",
                    service.address(),
                    detail=f"removed stale pid file: pid {result.pid} is not {service.name}",
                )
            else:
                report = ServiceReport(service.name, "not running", service.address())
            reports.append(report)
            print(report.line(), file=out, flush=True)
    if failures:
        raise StackError("\n".join(failures))
    return reports


def status(
    stack: StackSettings | None = None,
    settings: BaseProcessSettings | None = None,
    only: Iterable[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> list[ServiceReport]:
    """Report each selected service: ``running`` (alive and healthy), ``unhealthy`` or
    ``stopped``, with pid and address. ``ok`` is True only for ``running``."""
    stack, settings = _resolve(stack, settings)
    out = out or sys.stdout
    err = err or sys.stderr
    reports: list[ServiceReport] = []
    for service in _services(stack, settings, select_services(only), err):
        pid = process.running_pid(service.pid_path, service.matches)
        orphan = _find_orphan(service) if pid is None else None
        if pid is None and orphan is None:
            detail = ""
            for endpoint in service.endpoints():
                if port_in_use(endpoint.host, endpoint.port):
                    detail = f"port {endpoint.port} is held by {port_holder(endpoint.port)}"
                    break
            report = ServiceReport(
                service.name, "stopped", service.address(), detail=detail, ok=False
            )
        elif pid is None:
            report = ServiceReport(
                service.name,
                "running",
                service.address(),
                orphan,
                service.log_path,
                detail="pid file missing; `stack up` records it again",
            )
        else:
            try:
                service.ready(STATUS_PROBE_TIMEOUT_S)
                service.check()
            except NotReady as exc:
                report = ServiceReport(
                    service.name,
                    "unhealthy",
                    service.address(),
                    pid,
                    service.log_path,
                    detail=str(exc),
                    ok=False,
                )
            else:
                report = ServiceReport(
                    service.name, "running", service.address(), pid, service.log_path
                )
        reports.append(report)
        print(report.line(), file=out, flush=True)
    return reports


def pids(stack: StackSettings, settings: BaseProcessSettings) -> dict[str, int | None]:
    """PID of each service of ``stack`` that runs (None for those that do not)."""
    services = _services(stack, settings, list(SERVICE_NAMES), sys.stderr)
    return {s.name: process.running_pid(s.pid_path, s.matches) for s in services}


__all__ = ["ServiceReport", "down", "pids", "select_services", "status", "up"]
