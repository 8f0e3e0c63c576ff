"""``python -m chemwatch.stack up|down|status`` (the same as ``chemwatch stack ...``)."""

from __future__ import annotations

import argparse
import sys

from chemwatch.stack.cli import _DESCRIPTION, configure


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m chemwatch.stack", description=_DESCRIPTION)
    configure(parser)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
