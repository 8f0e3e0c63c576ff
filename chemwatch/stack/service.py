"""What every service of the stack provides to the manager."""

from __future__ import annotations

import hashlib
import shutil
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from chemwatch.stack.config import StackSettings
from chemwatch.stack.system import Account, can_use_dir_as, chown, display_path, is_root
from common.settings import BaseProcessSettings

Note = Callable[[str], None]

# Where a service account's files go when it cannot reach the stack home (for example
# a home under /root, which is 0700): a path every account can traverse.
FALLBACK_ROOT = Path("/var/lib/chemwatch-stack")


class NotReady(Exception):
    """A health probe failed; the message is a short reason shown while waiting."""


def daemon_env(user: Account | None) -> dict[str, str] | None:
    """Environment for a daemon: a clean one for another account, else inherit ours."""
    if user is None or not is_root():
        return None
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": user.home,
        "USER": user.name,
        "LOGNAME": user.name,
        "LANG": "C.UTF-8",
    }


@dataclass(frozen=True)
class Launch:
    """How to start one daemon."""

    argv: Sequence[str]
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    user: Account | None = None


@dataclass(frozen=True)
class Endpoint:
    """A TCP address a service listens on."""

    host: str
    port: int
    purpose: str = ""


@dataclass
class Service(ABC):
    """One daemon of the stack: its files, how to prepare, start and check it."""

    stack: StackSettings
    settings: BaseProcessSettings
    note: Note = field(default=lambda _msg: None)

    name: ClassVar[str]
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_timeout_s: ClassVar[float] = 30.0

    @property
    def dir(self) -> Path:
        """``<home>/<service>``: PID file, log and (normally) everything else."""
        return self.stack.home / self.name

    @property
    def pid_path(self) -> Path:
        """Our PID file for this service."""
        return self.dir / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        """Where the daemon's output goes."""
        return self.dir / f"{self.name}.log"

    @property
    def start_timeout_s(self) -> float:
        """Seconds from spawn until the health check must pass."""
        return self.stack.start_timeout_s(self.name)

    @abstractmethod
    def endpoints(self) -> list[Endpoint]:
        """Every TCP address the daemon binds (checked for conflicts before start)."""

    @abstractmethod
    def address(self) -> str:
        """The client-facing address, e.g. ``mqtt://127.0.0.1:11883``."""

    @abstractmethod
    def matches(self, argv: Sequence[str]) -> bool:
        """Whether a process with this command line is this service of this home."""

    @abstractmethod
    def prepare(self) -> Launch:
        """Install what is missing, write config files, initialise data; return the launch."""

    @abstractmethod
    def ready(self, timeout_s: float) -> None:
        """One health probe; raises with a short reason when the service is not usable yet."""

    def bootstrap(self) -> None:  # noqa: B027 - optional hook, most services need none
        """Create what clients expect (roles, databases) once the service is ready."""

    def check(self) -> None:  # noqa: B027 - optional hook, most services need none
        """A client's-eye check after :meth:`bootstrap` (raises :class:`NotReady`)."""

    @property
    def fallback_dir(self) -> Path:
        """Where the account's files go when it cannot reach the home (see service_dir)."""
        digest = hashlib.sha256(str(self.stack.home).encode()).hexdigest()[:12]
        return FALLBACK_ROOT / digest / self.name

    def service_dir(self, user: Account | None, create: bool = False) -> Path:
        """The directory for files the daemon's own account must write.

        Normally ``<home>/<service>``. When root runs the stack and ``user`` cannot
        traverse the home (a parent lacks o+x), a directory under /var/lib is used
        instead and the user is told: silently changing the modes of someone's home
        directories would be worse. Without ``create`` nothing is created or probed:
        the answer is wherever a ``data`` directory already exists.
        """
        own = self.dir
        if (own / "data").exists():
            return own
        if (self.fallback_dir / "data").exists():
            return self.fallback_dir
        if not create or user is None or not is_root():
            return own
        probe = own / "data"
        probe.mkdir(parents=True, exist_ok=True)
        chown(probe, user)
        if can_use_dir_as(user, probe):
            return own
        shutil.rmtree(probe, ignore_errors=True)
        self.fallback_dir.mkdir(parents=True, exist_ok=True)
        self.note(
            f"note: user {user.name} cannot reach {display_path(own)} (a parent directory is "
            f"not searchable by others); {self.name} keeps its data in {self.fallback_dir}"
        )
        return self.fallback_dir
