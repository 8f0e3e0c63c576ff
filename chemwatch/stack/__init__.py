"""Local service stack without containers: ``chemwatch stack up|down|status``.

Mosquitto, PostgreSQL and Kafka run as plain processes with everything under one home
directory (``.chemwatch`` by default)::

    <home>/mosquitto/{mosquitto.conf,data,mosquitto.log,mosquitto.pid}
    <home>/postgres/{data,run,postgres.log,postgres.pid}
    <home>/kafka/{libs,config,data,kafka.log,kafka.pid}

Ports and credentials come from :class:`common.settings.BaseProcessSettings`, the same
settings the services read, so the stack and the services agree.

Programmatic use (a test fixture, say)::

    from chemwatch.stack import StackSettings, up
    up(StackSettings(home=Path(".chemwatch")))
"""

from __future__ import annotations

from chemwatch.stack.cli import add_parser, run
from chemwatch.stack.config import StackError, StackSettings, load_stack_settings
from chemwatch.stack.manager import ServiceReport, down, status, up

__all__ = [
    "ServiceReport",
    "StackError",
    "StackSettings",
    "add_parser",
    "down",
    "load_stack_settings",
    "run",
    "status",
    "up",
]
