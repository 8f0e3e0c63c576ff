"""Ports for the services tests and benchmarks start: free, and out of the way of the
kernel's ephemeral ports (which outgoing connections take)."""

from __future__ import annotations

import socket

import pytest

from chemwatch import ports


def test_a_free_port_is_below_the_ephemeral_range_and_can_be_bound() -> None:
    start = ports._ephemeral_start()
    for _ in range(20):
        port = ports.free_port()
        assert 20_000 <= port < start
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # nobody holds it


def test_a_port_someone_listens_on_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        picks = iter([taken, taken, 23_456])
        monkeypatch.setattr(ports.random, "randrange", lambda a, b: next(picks))
        monkeypatch.setattr(ports, "_ephemeral_start", lambda: 32_768)
        assert ports.free_port() == 23_456
