"""Start-up shared by the service entry points: settings, logging, registry, errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from common.cli import overrides
from common.errors import ChemWatchError
from common.settings import BaseProcessSettings, load_settings

S = TypeVar("S", bound=BaseProcessSettings)
log = logging.getLogger(__name__)


def settings_from_args(
    cls: type[S], args: argparse.Namespace, extra: dict[str, tuple[str, ...]] | None = None
) -> S:
    """The process's one settings object: file < environment < flags."""
    return load_settings(cls, getattr(args, "config", None), overrides(args, extra))


def guarded(main: Callable[[], int]) -> int:
    """Run a process entry point; a ChemWatchError is one clear line and exit code 2."""
    try:
        return main()
    except ChemWatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ExceptionGroup as group:
        # Concurrent tasks (asyncio.TaskGroup) failing for the same reason, e.g. two Kafka
        # clients refused with the same wrong password: one line per distinct reason.
        ours, rest = group.split(ChemWatchError)
        if ours is None or rest is not None:
            raise
        for message in dict.fromkeys(str(exc) for exc in _leaves(ours)):
            print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


def module_main(
    prog: str,
    description: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    argv: list[str] | None = None,
) -> int:
    """``python -m <package>``: the same flags as the ``chemwatch`` subcommand."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))
