"""One root exception for ChemWatch; subclasses say whether a retry can help."""

from __future__ import annotations


class ChemWatchError(Exception):
    """Root of every error ChemWatch raises on purpose."""

    retriable: bool = False


class ConfigError(ChemWatchError):
    """A configuration or registry problem: names the source, the key and what is wrong."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


class ServiceUnavailable(ChemWatchError):
    """A broker or database could not be reached; retrying later may succeed."""

    retriable = True
