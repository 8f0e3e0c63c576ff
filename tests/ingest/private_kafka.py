"""A private single-node Kafka for tests that must stop a broker.

It runs from a temporary stack home on free ports through the project's own stack
manager (``chemwatch stack up|down --home DIR --only kafka``), reusing the jar cache of
the shared stack, so the shared Kafka other tests (and people) use is never touched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from chemwatch.ports import free_port
from chemwatch.stack.config import StackSettings
from tests.fixtures.services import ROOT


class PrivateKafka:
    """``up()`` / ``down()`` a Kafka broker in ``home`` (restartable: data is kept)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.config = home / "stack.yaml"
        libs = home / "kafka" / "libs"
        libs.parent.mkdir(parents=True, exist_ok=True)
        shared_libs = StackSettings().home / "kafka" / "libs"
        if shared_libs.is_dir():  # no Maven download when the shared stack has the jars
            libs.symlink_to(shared_libs, target_is_directory=True)
        self.config.write_text(
            yaml.safe_dump(
                {
                    "kafka": {"bootstrap_servers": self.bootstrap, "partitions": 3},
                    "stack": {
                        "kafka_controller_port": free_port(),
                        "kafka_heap_min": "256m",
                        "kafka_heap_max": "512m",
                    },
                }
            )
        )

    def _stack(self, command: str, timeout: float) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "chemwatch",
                "stack",
                command,
                "--home",
                str(self.home),
                "--config",
                str(self.config),
                "--only",
                "kafka",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"private kafka {command} failed:\n{result.stdout}\n{result.stderr}"
            )

    def up(self) -> None:
        """Start (or restart) the broker and wait until a produce/consume round trip works."""
        self._stack("up", 240)

    def down(self) -> None:
        """Stop the broker (only this one: the stack manager stops what this home started)."""
        self._stack("down", 120)
