"""Free TCP ports for the services a benchmark or a test starts on this machine."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 20_000  # below this, well-known services may want their ports


def free_port() -> int:
    """A TCP port nobody listens on right now, below the kernel's ephemeral range.

    ``bind(0)`` hands out a port from the ephemeral range, which outgoing connections
    draw from too: in CI (29 Nov) one took such a port between the pick and the fault
    rig's Kafka binding it ("Address already in use"). Below that range only a
    listener can hold a port, and the test bind finds it.
    """
    top = _ephemeral_start()
    if top - _LOWEST < 1_000:  # an unusual range: fall back on the kernel's choice
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    for _ in range(1_000):
        port = random.randrange(_LOWEST, top)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port between {_LOWEST} and {top}")


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default
